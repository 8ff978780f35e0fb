package koru

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DB is a connection to a KoruDelta server or cluster. It is safe for concurrent use and
// reuses its HTTP connections (keep-alive); make one and share it.
type DB struct {
	base   string // scheme://host[:port][/prefix], without userinfo or a trailing slash
	auth   string // the Authorization header, or ""
	client *http.Client
	retry  RetryPolicy
	agent  string
}

// Option configures Connect.
type Option func(*DB)

// WithToken sends token as "Authorization: Bearer <token>" (a data-plane JWT, or the admin
// token). It takes precedence over a token given in the URL.
func WithToken(token string) Option {
	return func(db *DB) {
		if token != "" {
			db.auth = "Bearer " + token
		}
	}
}

// WithHTTPClient uses c for every request (its Transport, timeouts, TLS settings). The default
// is a client with its own keep-alive Transport.
func WithHTTPClient(c *http.Client) Option {
	return func(db *DB) {
		if c != nil {
			db.client = c
		}
	}
}

// WithRetry replaces the retry policy (DefaultRetryPolicy); RetryPolicy{MaxAttempts: 1} never retries.
func WithRetry(p RetryPolicy) Option {
	return func(db *DB) { db.retry = p }
}

// WithUserAgent sets the User-Agent header sent with every request.
func WithUserAgent(agent string) Option {
	return func(db *DB) { db.agent = agent }
}

// defaultTransport is shared by DBs made without WithHTTPClient, so two of them to one server
// share idle connections; it keeps more idle connections per host than net/http's default of 2,
// so concurrent callers do not open and close connections.
var defaultTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	return t
}()

// Connect makes a client of the server at rawURL ("http://localhost:7878", or a hosted
// cluster's https URL). A token may come with WithToken, or in the URL as
// "https://token:<token>@host": the server reads Basic credentials as the bearer token they
// carry, and so does the client send them. Connect does not contact the server.
func Connect(rawURL string, opts ...Option) (*DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, &Error{Code: "bad_request", Message: "invalid URL: " + err.Error()}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &Error{Code: "bad_request", Message: "invalid URL " + quote(rawURL) + ": want http(s)://host[:port]"}
	}
	db := &DB{
		client: &http.Client{Transport: defaultTransport},
		retry:  DefaultRetryPolicy,
		agent:  "koru-go-client",
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		creds := u.User.Username() + ":" + pass
		db.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(creds))
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", ""
	db.base = strings.TrimRight(u.String(), "/")
	for _, opt := range opts {
		opt(db)
	}
	return db, nil
}

// URL is the server's base URL, without credentials.
func (db *DB) URL() string { return db.base }

// request is one API call, kept whole so it can be sent again.
type request struct {
	method string
	path   string // under /api/v1, already escaped
	query  url.Values
	body   []byte // JSON, or nil
	header map[string]string
}

// do sends req, retrying as the policy allows, and decodes a 2xx answer's body into out (when
// out is not nil). Any other answer is an *Error.
func (db *DB) do(ctx context.Context, req request, out any) error {
	target := db.base + "/api/v1" + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	safe := req.safeToRepeat()
	var last error
	for attempt := 1; ; attempt++ {
		body, status, retryAfter, err := db.send(ctx, req, target)
		var apiErr *Error
		switch {
		case err != nil:
			last = err
		case status >= 200 && status < 300:
			if out == nil || len(body) == 0 {
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("koru: %s %s: reading the answer: %w", req.method, req.path, err)
			}
			return nil
		default:
			apiErr = errorFromAnswer(status, body, retryAfter)
			apiErr.Attempts = attempt
			last = apiErr
		}
		if ctx.Err() != nil {
			return last
		}
		wait, again := db.retry.next(attempt, apiErr, err, safe)
		if !again {
			return last
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return last
		case <-timer.C:
		}
	}
}

// send makes one attempt: the answer's body, status and Retry-After, or a transport error.
func (db *DB) send(ctx context.Context, req request, target string) ([]byte, int, time.Duration, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return nil, 0, 0, &Error{Code: "bad_request", Message: err.Error()}
	}
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	hr.Header.Set("Accept", "application/json")
	if db.auth != "" {
		hr.Header.Set("Authorization", db.auth)
	}
	if db.agent != "" {
		hr.Header.Set("User-Agent", db.agent)
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	resp, err := db.client.Do(hr)
	if err != nil {
		return nil, 0, 0, err
	}
	// Reading the body to its end and closing it returns the connection to the pool.
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, 0, 0, err
	}
	return data, resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), nil
}

// errorFromAnswer reads the API's error body {"error": {"code", "message"}}; an answer without
// one (a proxy's page) keeps its status with the code "http_<status>".
func errorFromAnswer(status int, body []byte, retryAfter time.Duration) *Error {
	var wire struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &wire) == nil && wire.Error.Code != "" {
		return &Error{Status: status, Code: wire.Error.Code, Message: wire.Error.Message, RetryAfter: retryAfter}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Code: fmt.Sprintf("http_%d", status), Message: msg, RetryAfter: retryAfter}
}

// errNoValue is returned for a nil *DB, so a failed Connect whose error was ignored fails loudly.
var errNoValue = errors.New("koru: nil *DB (did Connect fail?)")

// escape percent-encodes one path segment, everything but RFC 3986's unreserved characters, so
// keys holding "/", "+", "%" or spaces reach the server as one segment, unchanged.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
