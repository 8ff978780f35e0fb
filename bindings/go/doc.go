// Package koru is a pure-Go client (no cgo, standard library only) of the KoruDelta HTTP API
// (dataplane/API.md): a koru-dataplane server, a replicated cluster or a hosted KoruDelta Cloud
// cluster.
//
//	db, err := koru.Connect("http://localhost:7878", koru.WithToken(token))
//	w, err := db.Put("users", "alice", map[string]any{"name": "Alice", "age": 30})
//	e, err := db.Get("users", "alice")
//	var user struct{ Name string; Age int }
//	err = e.Decode(&user)
//
// Every method has a form taking a context.Context first (PutContext, GetContext, ...), as
// database/sql has Query and QueryContext; the short form uses context.Background().
//
// Errors the server answers are *Error values carrying the HTTP API's code; match them with
// errors.Is against the sentinels (ErrNotFound, ErrVersionMismatch, ...). Requests refused
// because the cluster has no leader or is over its rate are retried (see RetryPolicy).
package koru
