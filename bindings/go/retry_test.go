package koru_test

// These tests check the client's own retry rules, so they use an httptest server that answers
// exactly the refusals to retry (503 no_leader with Retry-After, 429, outcome_unknown); a real
// koru-dataplane cannot be made to answer them on cue. Everything else runs against the real server.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	koru "github.com/koru-delta/go-client"
)

// scripted answers each request with the next of its answers (the last one repeats) and
// records what it was sent.
type scripted struct {
	mu      sync.Mutex
	answers []answer
	got     []time.Time
	ifMatch []string
	remotes map[string]bool
}

type answer struct {
	status     int
	code       string
	retryAfter string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.got)
	s.got = append(s.got, time.Now())
	s.ifMatch = append(s.ifMatch, r.Header.Get("If-Match"))
	s.remotes[r.RemoteAddr] = true
	a := s.answers[min(n, len(s.answers)-1)]
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
	if a.code != "" {
		fmt.Fprintf(w, `{"error":{"code":%q,"message":"scripted"}}`, a.code)
		return
	}
	fmt.Fprint(w, `{"value":1,"version_id":"7.0","timestamp":"2026-01-31T12:00:00.123456Z","previous_version":"6.0","versionId":"7.0"}`)
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func serve(t *testing.T, answers ...answer) (*scripted, string) {
	s := &scripted{answers: answers, remotes: map[string]bool{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

var (
	ok        = answer{status: 200}
	noLeader  = answer{status: 503, code: "no_leader", retryAfter: "1"}
	rateLimit = answer{status: 429, code: "rate_limited"}
	unknown   = answer{status: 503, code: "outcome_unknown"}
	stopping  = answer{status: 503, code: "shutting_down"}
)

func TestRetriesNoLeaderHonouringRetryAfter(t *testing.T) {
	s, url := serve(t, noLeader, ok)
	db, _ := koru.Connect(url)
	start := time.Now()
	// A plain PUT too: no_leader means nothing was written, so repeating it cannot write twice.
	w, err := db.Put("a", "b", 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.count() != 2 || w.VersionID != "7.0" || w.Timestamp != time.Date(2026, 1, 31, 12, 0, 0, 123456000, time.UTC) {
		t.Fatalf("attempts %d, answer %+v", s.count(), w)
	}
	if gap := s.got[1].Sub(s.got[0]); gap < 900*time.Millisecond || time.Since(start) > 4*time.Second {
		t.Fatalf("waited %v between attempts, want the Retry-After of 1 s", gap)
	}
	// Both attempts went over one kept-alive connection.
	if len(s.remotes) != 1 {
		t.Fatalf("%d connections for 2 requests", len(s.remotes))
	}
}

func TestRetriesAreBounded(t *testing.T) {
	s, url := serve(t, rateLimit)
	db, _ := koru.Connect(url, koru.WithRetry(koru.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}))
	_, err := db.BatchPut([]koru.BatchWrite{koru.PutOp("a", "b", 1)})
	var kerr *koru.Error
	if !errors.As(err, &kerr) || !errors.Is(err, koru.ErrRateLimited) || kerr.Attempts != 3 || s.count() != 3 {
		t.Fatalf("after %d attempts: %#v", s.count(), err)
	}
	// MaxDelay caps a long Retry-After.
	s, url = serve(t, answer{status: 503, code: "no_leader", retryAfter: "3600"}, ok)
	db, _ = koru.Connect(url, koru.WithRetry(koru.RetryPolicy{MaxAttempts: 2, MaxDelay: 50 * time.Millisecond}))
	if _, err := db.Get("a", "b"); err != nil || s.count() != 2 {
		t.Fatalf("capped wait: %v after %d", err, s.count())
	}
}

func TestUnsafeRequestsAreNotRepeatedAfterAnUnknownOutcome(t *testing.T) {
	for _, refusal := range []answer{unknown, stopping} {
		s, url := serve(t, refusal)
		db, _ := koru.Connect(url)
		// A plain PUT may have been applied: it is not sent again.
		if _, err := db.Put("a", "b", 1); !errors.Is(err, &koru.Error{Code: refusal.code}) || s.count() != 1 {
			t.Fatalf("%s, plain put: %v after %d attempts", refusal.code, err, s.count())
		}
		if _, err := db.BatchPut([]koru.BatchWrite{koru.DeleteOp("a", "b")}); err == nil || s.count() != 2 {
			t.Fatalf("%s, batch: %v after %d attempts", refusal.code, err, s.count())
		}
	}
	// A read, and a write with If-Match (it cannot apply twice), are.
	s, url := serve(t, unknown, unknown, ok)
	db, _ := koru.Connect(url, koru.WithRetry(koru.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond}))
	if _, err := db.Get("a", "b"); err != nil || s.count() != 3 {
		t.Fatalf("get: %v after %d", err, s.count())
	}
	s, url = serve(t, unknown, ok)
	db, _ = koru.Connect(url, koru.WithRetry(koru.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond}))
	if _, err := db.Put("a", "b", 1, koru.IfMatch("6.0")); err != nil || s.count() != 2 || s.ifMatch[1] != "6.0" {
		t.Fatalf("if-match put: %v after %d (%q)", err, s.count(), s.ifMatch)
	}
	if _, err := db.Query("a", nil); err != nil {
		t.Fatalf("query: %v", err)
	}
}

func TestNoRetryForAnswersThatWillNotChange(t *testing.T) {
	s, url := serve(t, answer{status: 412, code: "version_mismatch"}, ok)
	db, _ := koru.Connect(url)
	if _, err := db.Put("a", "b", 1, koru.IfMatch("1.0")); !errors.Is(err, koru.ErrVersionMismatch) || s.count() != 1 {
		t.Fatalf("412: %v after %d", err, s.count())
	}
	// An answer without the API's error body (a proxy's) keeps its status; a read is retried,
	// a plain write is not (the proxy may have passed it on).
	s, url = serve(t, answer{status: 502})
	db, _ = koru.Connect(url, koru.WithRetry(koru.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}))
	var kerr *koru.Error
	if _, err := db.Get("a", "b"); !errors.As(err, &kerr) || kerr.Status != 502 || kerr.Code != "http_502" || s.count() != 2 {
		t.Fatalf("502 get: %#v after %d", err, s.count())
	}
	if _, err := db.Put("a", "b", 1); !errors.As(err, &kerr) || kerr.Code != "http_502" || s.count() != 3 {
		t.Fatalf("502 put: %#v after %d", err, s.count())
	}
	s, url = serve(t, answer{status: 400, code: "bad_request"})
	db, _ = koru.Connect(url)
	if _, err := db.Get("a", "b"); !errors.Is(err, koru.ErrBadRequest) || s.count() != 1 {
		t.Fatalf("400: %v after %d", err, s.count())
	}
}

func TestContextStopsTheWait(t *testing.T) {
	s, url := serve(t, answer{status: 503, code: "no_leader", retryAfter: "30"})
	db, _ := koru.Connect(url, koru.WithRetry(koru.RetryPolicy{MaxAttempts: 5, MaxDelay: time.Minute}))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := db.GetContext(ctx, "a", "b"); !errors.Is(err, koru.ErrNoLeader) || time.Since(start) > 5*time.Second || s.count() != 1 {
		t.Fatalf("%v after %v, %d attempts", err, time.Since(start), s.count())
	}
}

func TestRetriesAConnectionNotMade(t *testing.T) {
	// A port that refuses at first and serves a moment later: a restarting server.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &scripted{answers: []answer{ok}, remotes: map[string]bool{}}
	go func() {
		time.Sleep(150 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		srv := &http.Server{Handler: s}
		t.Cleanup(func() { srv.Close() })
		_ = srv.Serve(l)
	}()
	db, _ := koru.Connect("http://"+addr, koru.WithRetry(koru.RetryPolicy{MaxAttempts: 8, BaseDelay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond}))
	// Nothing was sent while the connection was refused, so even a batch is sent again.
	if _, err := db.BatchPut([]koru.BatchWrite{koru.PutOp("a", "b", 1)}); err != nil {
		t.Fatalf("batch after refused connections: %v", err)
	}
	if s.count() != 1 {
		t.Fatalf("%d requests reached the server", s.count())
	}
}
