package koru

import (
	"fmt"
	"time"
)

// Error is an error answer of the server: its HTTP status and the API's error code and message
// (dataplane/API.md, "Errors").
type Error struct {
	// Status is the HTTP status, e.g. 404; 0 on the sentinels and on errors the client raises
	// itself before sending (such as an unparsable timestamp given to ParseTime).
	Status int
	// Code is the API's stable machine-readable code, e.g. "not_found" or "version_mismatch".
	Code string
	// Message says what went wrong, for people; its text is not part of the contract.
	Message string
	// RetryAfter is the server's Retry-After, when it sent one (429 and 503 answers).
	RetryAfter time.Duration
	// Attempts is how many times the request was sent (more than 1 when it was retried).
	Attempts int
}

// Error formats the error as "koru: <code> (<status>): <message>".
func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("koru: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("koru: %s (%d): %s", e.Code, e.Status, e.Message)
}

// Is makes errors.Is(err, koru.ErrNotFound) true for every error with that code: a sentinel
// matches on its code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t == nil {
		return false
	}
	return t.Code == e.Code && (t.Status == 0 || t.Status == e.Status)
}

// sentinel makes an *Error that matches, through errors.Is, every error with its code.
func sentinel(code string) *Error {
	return &Error{Code: code, Message: "any " + code + " error (sentinel for errors.Is)"}
}

// Sentinels for errors.Is, one per error code of the HTTP API a caller is likely to branch on.
// Any other code is still available as (*Error).Code.
var (
	// ErrNotFound: the key never existed or its latest version is a delete (404).
	ErrNotFound = sentinel("not_found")
	// ErrVersionMismatch: an IfMatch write found the key at another version; nothing was written (412).
	ErrVersionMismatch = sentinel("version_mismatch")
	// ErrInvalidName: a namespace or key breaks the naming rules (400).
	ErrInvalidName = sentinel("invalid_name")
	// ErrBadRequest: any other request the caller must fix, such as a bad timestamp or limit (400).
	ErrBadRequest = sentinel("bad_request")
	// ErrMalformedJSON: the body was not JSON or lacked a required field (400).
	ErrMalformedJSON = sentinel("malformed_json")
	// ErrInvalidValue: a value no JSON reader could read back, such as 1e400 (400).
	ErrInvalidValue = sentinel("invalid_value")
	// ErrUnauthorized: the token is missing, malformed, badly signed, expired or revoked (401).
	ErrUnauthorized = sentinel("unauthorized")
	// ErrForbidden: the token is for another cluster or its scope is too small (403).
	ErrForbidden = sentinel("forbidden")
	// ErrUniqueViolation: the write would give a unique index a second key; nothing was written (409).
	ErrUniqueViolation = sentinel("unique_violation")
	// ErrAlreadyExists: a view or index with that name exists (409).
	ErrAlreadyExists = sentinel("already_exists")
	// ErrValueTooLarge: a value over the server's --max-value-bytes (413).
	ErrValueTooLarge = sentinel("value_too_large")
	// ErrBatchTooLarge: a batch over the server's --max-batch-ops (413).
	ErrBatchTooLarge = sentinel("batch_too_large")
	// ErrRateLimited: over the server's operation rate; retried automatically (429).
	ErrRateLimited = sentinel("rate_limited")
	// ErrNoLeader: the cluster is electing a leader; nothing was written; retried automatically (503).
	ErrNoLeader = sentinel("no_leader")
	// ErrShuttingDown: the server is stopping (503).
	ErrShuttingDown = sentinel("shutting_down")
	// ErrOutcomeUnknown: a write reached a leader that lost its majority: it may or may not be
	// applied; read before repeating a write that is not idempotent (503).
	ErrOutcomeUnknown = sentinel("outcome_unknown")
	// ErrReadOnly: a log write failed and the server refuses writes until restarted (503).
	ErrReadOnly = sentinel("read_only")
	// ErrQuotaExceeded: the write would take the log past the storage quota (507).
	ErrQuotaExceeded = sentinel("storage_quota_exceeded")
	// ErrInternal: a storage error; details are in the server's log (500).
	ErrInternal = sentinel("internal")
)
