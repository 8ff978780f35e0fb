package koru_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	koru "github.com/koru-delta/go-client"
)

// Read, change and write back with compare-and-set, retrying when another writer got there first.
// (Examples without an Output comment are compiled, not run: they need a server.)
func ExampleIfMatch() {
	db, err := koru.Connect("http://localhost:7878")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		e, err := db.GetContext(ctx, "accounts", "alice")
		if err != nil {
			log.Fatal(err)
		}
		var acct struct{ Balance int }
		if err := e.Decode(&acct); err != nil {
			log.Fatal(err)
		}
		acct.Balance += 10
		_, err = db.PutContext(ctx, "accounts", "alice", acct, koru.IfMatch(e.VersionID))
		if errors.Is(err, koru.ErrVersionMismatch) {
			continue // someone wrote in between: read again
		}
		if err != nil {
			log.Fatal(err)
		}
		return
	}
}

// Follow the change feed from the start.
func ExampleDB_Changes() {
	db, _ := koru.Connect("http://localhost:7878", koru.WithToken("<a data-plane token>"))
	var since uint64
	for {
		page, err := db.Changes(since, koru.Limit(1000))
		if err != nil {
			log.Fatal(err)
		}
		for _, c := range page.Changes {
			for _, op := range c.Ops {
				fmt.Println(c.LSN, op.Op, op.Namespace, op.Key)
			}
		}
		since = page.NextSince
		if since >= page.LastLSN {
			return
		}
	}
}
