package koru_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	koru "github.com/koru-delta/go-client"
)

// connect starts a fresh server and connects to it.
func connect(t *testing.T, opts ...koru.Option) *koru.DB {
	t.Helper()
	s := startServer(t, "127.0.0.1:0")
	db, err := koru.Connect(s.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// user is a typed value the tests put and decode.
type user struct {
	Name string   `json:"name"`
	Age  int      `json:"age"`
	Tags []string `json:"tags,omitempty"`
}

func TestPutGetDecodeAndTimes(t *testing.T) {
	db := connect(t)
	before := time.Now().UTC().Add(-time.Second)
	w1, err := db.Put("users", "alice", user{Name: "Alice", Age: 30})
	if err != nil {
		t.Fatal(err)
	}
	if w1.VersionID == "" || w1.PreviousVersion != "" {
		t.Fatalf("first write: %+v", w1)
	}
	if w1.Timestamp.Location() != time.UTC || w1.Timestamp.Before(before) || w1.Timestamp.Nanosecond()%1000 != 0 {
		t.Fatalf("timestamp %v: want UTC, now, microseconds", w1.Timestamp)
	}
	w2, err := db.Put("users", "alice", map[string]any{"name": "Alice", "age": 31, "tags": []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if w2.PreviousVersion != w1.VersionID {
		t.Fatalf("second write's previous %q, want %q", w2.PreviousVersion, w1.VersionID)
	}
	e, err := db.Get("users", "alice")
	if err != nil {
		t.Fatal(err)
	}
	var u user
	if err := e.Decode(&u); err != nil {
		t.Fatal(err)
	}
	if u.Age != 31 || u.Tags[0] != "x" || e.VersionID != w2.VersionID || !e.Timestamp.Equal(w2.Timestamp) {
		t.Fatalf("got %+v %+v", u, e)
	}
	old, err := db.GetAt("users", "alice", w1.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	if old.VersionID != w1.VersionID {
		t.Fatalf("as of w1: %+v", old)
	}
	if _, err := db.GetAt("users", "alice", w1.Timestamp.Add(-time.Hour)); !errors.Is(err, koru.ErrNotFound) {
		t.Fatalf("before the first write: %v", err)
	}
}

func TestValuesAreKeptByteForByte(t *testing.T) {
	db := connect(t)
	// A number beyond float64's precision: kept as text, never rounded.
	raw := json.RawMessage(`{"big":12345678901234567890123,"f":0.1000000000000000055511151231257827}`)
	if _, err := db.Put("raw", "k", raw); err != nil {
		t.Fatal(err)
	}
	e, err := db.Get("raw", "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value) != string(raw) {
		t.Fatalf("value %s, want %s", e.Value, raw)
	}
	// Keys with characters that mean something in a URL reach the server as one segment.
	for _, key := range []string{"a/b", "a b", "100%", "a+b", "é?#&=", ".."} {
		if _, err := db.Put("odd", key, key); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		e, err := db.Get("odd", key)
		if err != nil {
			t.Fatalf("get %q: %v", key, err)
		}
		var back string
		if err := e.Decode(&back); err != nil || back != key {
			t.Fatalf("get %q: %q %v", key, back, err)
		}
	}
	// The batch body is written by hand: names needing JSON escapes must survive it.
	odd := []string{`q"uote`, `back\slash`, "ünï", "<&>", "tab\u2028sep"}
	var writes []koru.BatchWrite
	for _, key := range odd {
		writes = append(writes, koru.PutOp("odd", key, key))
	}
	if _, err := db.BatchPut(writes); err != nil {
		t.Fatal(err)
	}
	for _, key := range odd {
		var back string
		if e, err := db.Get("odd", key); err != nil || e.Decode(&back) != nil || back != key {
			t.Fatalf("batch key %q: %q %v", key, back, err)
		}
	}
	page, err := db.Keys("odd")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Keys) != 6+len(odd) {
		t.Fatalf("keys %q", page.Keys)
	}
}

func TestCompareAndSet(t *testing.T) {
	db := connect(t)
	w1, err := db.Put("acct", "x", map[string]int{"balance": 10})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := db.Put("acct", "x", map[string]int{"balance": 20}, koru.IfMatch(w1.VersionID))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Put("acct", "x", map[string]int{"balance": 99}, koru.IfMatch(w1.VersionID))
	var kerr *koru.Error
	if !errors.As(err, &kerr) || kerr.Status != http.StatusPreconditionFailed || kerr.Code != "version_mismatch" || kerr.Attempts != 1 {
		t.Fatalf("stale If-Match: %#v", err)
	}
	if !errors.Is(err, koru.ErrVersionMismatch) || errors.Is(err, koru.ErrNotFound) {
		t.Fatalf("errors.Is: %v", err)
	}
	if _, err := db.Delete("acct", "x", koru.IfMatch(w1.VersionID)); !errors.Is(err, koru.ErrVersionMismatch) {
		t.Fatalf("stale delete: %v", err)
	}
	d, err := db.Delete("acct", "x", koru.IfMatch(w2.VersionID))
	if err != nil || d.PreviousVersion != w2.VersionID {
		t.Fatalf("delete: %+v %v", d, err)
	}
	h, err := db.History("acct", "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Versions) != 3 || !h.Versions[2].Deleted || string(h.Versions[2].Value) != "null" || h.NextCursor != "" {
		t.Fatalf("history %+v", h)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	db := connect(t)
	cases := []struct {
		name     string
		call     func() error
		sentinel error
		status   int
	}{
		{"get absent", func() error { _, err := db.Get("users", "nobody"); return err }, koru.ErrNotFound, 404},
		{"bad namespace", func() error { _, err := db.Put("bad name!", "k", 1); return err }, koru.ErrInvalidName, 400},
		{"reserved namespace", func() error { _, err := db.Put("_koru_x", "k", 1); return err }, koru.ErrInvalidName, 400},
		{"bad query", func() error {
			_, err := db.Query("users", map[string]any{"filter": map[string]any{"field": "a", "op": "between", "value": 1}})
			return err
		}, koru.ErrBadRequest, 400},
		{"zero limit", func() error { _, err := db.Keys("users", koru.Limit(0)); return err }, koru.ErrBadRequest, 400},
		{"empty batch", func() error { _, err := db.BatchPut(nil); return err }, koru.ErrBadRequest, 400},
		{"bad cursor", func() error {
			_, err := db.Put("h", "k", 1)
			_, err = db.History("h", "k", koru.Cursor("x"))
			return err
		}, koru.ErrBadRequest, 400},
		{"invalid value", func() error { _, err := db.Put("v", "k", json.RawMessage(`1e400`)); return err }, koru.ErrInvalidValue, 400},
		// A json.RawMessage goes as it is; the server checks it, and refuses a whole batch for one.
		{"raw message not JSON", func() error { _, err := db.Put("v", "k", json.RawMessage(`{bad`)); return err }, koru.ErrMalformedJSON, 400},
		{"raw message not JSON in a batch", func() error {
			_, err := db.BatchPut([]koru.BatchWrite{koru.PutOp("v", "a", 1), koru.PutOp("v", "b", json.RawMessage(`[1,`))})
			return err
		}, koru.ErrMalformedJSON, 400},
	}
	for _, c := range cases {
		err := c.call()
		var kerr *koru.Error
		if !errors.As(err, &kerr) || kerr.Status != c.status || !errors.Is(err, c.sentinel) {
			t.Errorf("%s: got %v, want %v (%d)", c.name, err, c.sentinel, c.status)
			continue
		}
		if kerr.Message == "" || !strings.Contains(kerr.Error(), kerr.Code) {
			t.Errorf("%s: message %q", c.name, kerr.Error())
		}
	}
	// Client-side: a value json.Marshal refuses never reaches the server.
	if _, err := db.Put("v", "k", func() {}); !errors.Is(err, koru.ErrMalformedJSON) {
		t.Errorf("unmarshalable value: %v", err)
	}
	// A nil *DB (Connect failed, error ignored) fails instead of panicking.
	var none *koru.DB
	if _, err := none.Get("a", "b"); err == nil {
		t.Error("nil DB: no error")
	}
	// Nothing answers on a closed port: a transport error, not an *Error.
	dead, _ := koru.Connect("http://127.0.0.1:1", koru.WithRetry(koru.RetryPolicy{MaxAttempts: 1}))
	if _, err := dead.Get("a", "b"); err == nil || errors.As(err, new(*koru.Error)) {
		t.Errorf("closed port: %v", err)
	}
}

func TestBatchesKeysNamespacesChanges(t *testing.T) {
	db := connect(t)
	b, err := db.BatchPut([]koru.BatchWrite{
		koru.PutOp("metrics", "cpu", map[string]int{"val": 45}),
		koru.PutOp("metrics", "mem", map[string]int{"val": 82}),
		koru.PutOp("other", "k", "x"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.LSN == 0 || len(b.Results) != 3 || b.Results[2].Key != "k" || b.Timestamp.IsZero() {
		t.Fatalf("batch %+v", b)
	}
	b2, err := db.BatchPut([]koru.BatchWrite{koru.PutOp("metrics", "cpu", map[string]int{"val": 50}), koru.DeleteOp("other", "k")})
	if err != nil {
		t.Fatal(err)
	}
	if b2.Results[1].PreviousVersion != b.Results[2].VersionID {
		t.Fatalf("batch delete %+v", b2)
	}
	items, err := db.BatchGet([]koru.BatchKey{
		{Namespace: "metrics", Key: "cpu"},
		{Namespace: "metrics", Key: "cpu", At: b.Timestamp},
		{Namespace: "other", Key: "k"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var old map[string]int
	if len(items) != 3 || string(items[0].Value) != `{"val":50}` || items[1].Decode(&old) != nil || old["val"] != 45 || items[2].Found {
		t.Fatalf("batch get %+v", items)
	}
	ns, err := db.Namespaces()
	if err != nil || len(ns) != 1 || ns[0] != "metrics" {
		t.Fatalf("namespaces %q %v", ns, err)
	}
	p1, err := db.Keys("metrics", koru.Limit(1))
	if err != nil || len(p1.Keys) != 1 || p1.NextCursor != "cpu" {
		t.Fatalf("keys page 1 %+v %v", p1, err)
	}
	p2, err := db.Keys("metrics", koru.Limit(1), koru.Cursor(p1.NextCursor))
	if err != nil || len(p2.Keys) != 1 || p2.Keys[0] != "mem" {
		t.Fatalf("keys page 2 %+v %v", p2, err)
	}
	pre, err := db.Keys("metrics", koru.Prefix("m"))
	if err != nil || len(pre.Keys) != 1 {
		t.Fatalf("prefix %+v %v", pre, err)
	}
	ch, err := db.Changes(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Changes) != 2 || len(ch.Changes[0].Ops) != 3 || ch.Changes[1].Ops[1].Op != "delete" || ch.LastLSN != b2.LSN {
		t.Fatalf("changes %+v", ch)
	}
	next, err := db.Changes(0, koru.Limit(1))
	if err != nil || len(next.Changes) != 1 || next.NextSince != b.LSN {
		t.Fatalf("changes page %+v %v", next, err)
	}
	q, err := db.Query("metrics", map[string]any{"sort": map[string]any{"field": "val", "descending": true}})
	if err != nil || q.Total != 2 || q.Results[0].Key != "mem" || q.Groups != nil {
		t.Fatalf("query %+v %v", q, err)
	}
}

func TestContextCancels(t *testing.T) {
	db := connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.GetContext(ctx, "a", "b"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := db.PutContext(ctx, "a", "b", 1); err != nil {
		t.Fatal(err)
	}
}
