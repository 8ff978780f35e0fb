package koru

import (
	"context"
	"errors"
	"math/rand"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy bounds the retries of requests the server refused for a passing reason.
//
// What is retried, and why it is safe:
//   - 503 no_leader, 503 catching_up and 429 rate_limited, for every request: the server answers
//     them before doing anything (dataplane/API.md: "nothing was written"), so even a plain PUT or
//     a batch cannot be applied twice.
//   - A connection that could not be made, for every request: nothing was sent.
//   - 503 shutting_down, 503 outcome_unknown, a proxy's 502/503/504 without the API's error body,
//     and a connection lost after the request was sent,
//     only for requests safe to repeat: reads (GET, query, batch get) and writes with IfMatch,
//     which can never apply twice (the second attempt finds the key at the first's version). Such
//     a retried write may then answer version_mismatch although its first attempt was applied:
//     (*Error).Attempts > 1 tells the caller to read the key before concluding. A plain PUT,
//     DELETE or batch is not retried then, since the first attempt may have made a version.
//
// Waits follow the server's Retry-After when it sends one (capped at MaxDelay), otherwise an
// exponential backoff from BaseDelay with jitter; a cancelled context stops the waiting.
type RetryPolicy struct {
	// MaxAttempts is how many times a request is sent at most, the first included; 1 or less
	// never retries.
	MaxAttempts int
	// BaseDelay is the first backoff when the server sends no Retry-After; it doubles per attempt.
	BaseDelay time.Duration
	// MaxDelay caps every wait, Retry-After included.
	MaxDelay time.Duration
}

// DefaultRetryPolicy sends a request at most 5 times and waits at most 5 s between attempts,
// enough to ride out a Raft election (about 1 s) or a leader's restart.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}

// next says whether attempt number `attempt`, which failed with apiErr (an answer) or netErr
// (no answer), is tried again, and after how long.
func (p RetryPolicy) next(attempt int, apiErr *Error, netErr error, safe bool) (time.Duration, bool) {
	if attempt >= p.MaxAttempts {
		return 0, false
	}
	retry := false
	var hint time.Duration
	switch {
	case apiErr != nil:
		switch apiErr.Code {
		case "no_leader", "catching_up", "rate_limited":
			retry = true
		case "shutting_down", "outcome_unknown", "http_502", "http_503", "http_504":
			// http_50x: a proxy or load balancer in front of the server answered, not the
			// server, so whether the request reached it is unknown.
			retry = safe
		}
		hint = apiErr.RetryAfter
	case netErr != nil:
		retry = notSent(netErr) || (safe && !errors.Is(netErr, context.Canceled) && !errors.Is(netErr, context.DeadlineExceeded))
	}
	if !retry {
		return 0, false
	}
	wait := hint
	if wait <= 0 {
		wait = p.BaseDelay << (attempt - 1)
		if wait > 0 {
			// Up to half of the backoff at random, so clients refused together do not return together.
			wait += time.Duration(rand.Int63n(int64(wait)/2 + 1))
		}
	}
	if p.MaxDelay > 0 && wait > p.MaxDelay {
		wait = p.MaxDelay
	}
	return wait, true
}

// notSent is true for errors raised before any byte of the request left: the connection could
// not be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// safeToRepeat is true for requests that cannot change anything twice: reads, and writes that
// carry If-Match.
func (r request) safeToRepeat() bool {
	switch {
	case r.method == http.MethodGet:
		return true
	case r.method == http.MethodPost && (r.path == "/batch/get" || strings.HasSuffix(r.path, "/query")):
		return true
	case r.method == http.MethodPut || r.method == http.MethodDelete:
		_, ok := r.header["If-Match"]
		return ok
	}
	return false
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date; 0 when absent or
// unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
