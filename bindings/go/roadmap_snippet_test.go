package koru_test

// The Go snippet of ROADMAP.md, section 4.3, exactly as written there (its import line too);
// TestRoadmapSnippet runs it against a real server on the port it names.

import "github.com/koru-delta/go-client"

func roadmapSnippet() {
	db, _ := koru.Connect("http://localhost:7878")
	db.Put("users", "alice", map[string]interface{}{
		"name": "Alice",
		"age":  30,
	})
}
