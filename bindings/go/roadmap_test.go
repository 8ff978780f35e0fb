package koru_test

import (
	"fmt"
	"net"
	"os"
	"testing"

	koru "github.com/koru-delta/go-client"
)

func TestRoadmapSnippet(t *testing.T) {
	// The snippet names localhost:7878, the server's default port, so the server must be there.
	l, err := net.Listen("tcp", "127.0.0.1:7878")
	if err != nil {
		msg := fmt.Sprintf("port 7878 is taken, so the roadmap's snippet cannot run: %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "SKIPPING:", msg)
		t.Skip(msg)
	}
	l.Close()
	s := startServer(t, "127.0.0.1:7878")
	roadmapSnippet()
	db, _ := koru.Connect(s.URL)
	e, err := db.Get("users", "alice")
	if err != nil {
		t.Fatal(err)
	}
	var alice struct {
		Name string
		Age  int
	}
	if err := e.Decode(&alice); err != nil || alice.Name != "Alice" || alice.Age != 30 {
		t.Fatalf("users/alice = %s (%v)", e.Value, err)
	}
}
