package koru

import (
	"encoding/json"
	"time"
)

// Written is the answer to a Put or Delete: the version the write made.
type Written struct {
	// VersionID is the new version's opaque id, usable with IfMatch.
	VersionID string `json:"version_id"`
	// Timestamp is the moment the write was committed (UTC, microseconds).
	Timestamp time.Time `json:"timestamp"`
	// PreviousVersion is the version it replaced; "" for a new key.
	PreviousVersion string `json:"previous_version"`
}

// Entry is one version of a key, as Get and GetAt read it.
type Entry struct {
	// Value is the JSON text of the value, byte for byte as it was written.
	Value json.RawMessage `json:"value"`
	// VersionID is the version's opaque id, usable with IfMatch.
	VersionID string `json:"version_id"`
	// Timestamp is the moment the version was committed (UTC, microseconds).
	Timestamp time.Time `json:"timestamp"`
	// PreviousVersion is the version before it; "" for the key's first version.
	PreviousVersion string `json:"previous_version"`
}

// Decode unmarshals the value into v, as json.Unmarshal would.
func (e *Entry) Decode(v any) error { return json.Unmarshal(e.Value, v) }

// Version is one entry of a key's history.
type Version struct {
	// Value is the JSON text of the value; "null" on a delete version.
	Value json.RawMessage `json:"value"`
	// VersionID is the version's opaque id.
	VersionID string `json:"version_id"`
	// Timestamp is the moment the version was committed (UTC, microseconds).
	Timestamp time.Time `json:"timestamp"`
	// Deleted is true on a delete version (a tombstone).
	Deleted bool `json:"deleted"`
}

// Decode unmarshals the value into v, as json.Unmarshal would.
func (v *Version) Decode(into any) error { return json.Unmarshal(v.Value, into) }

// HistoryPage is a key's versions, oldest first: all of them, or a page when the history is long.
type HistoryPage struct {
	// Namespace and Key name the key.
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	// Versions are oldest first; a delete is a version with Deleted set.
	Versions []Version `json:"versions"`
	// NextCursor, when not "", asks for the next page: pass it back with Cursor.
	NextCursor string `json:"next_cursor"`
}

// KeysPage is a page of a namespace's live keys, in byte order.
type KeysPage struct {
	// Namespace is the namespace listed.
	Namespace string `json:"namespace"`
	// Keys are the live keys of the page.
	Keys []string `json:"keys"`
	// NextCursor, when not "", asks for the next page: pass it back with Cursor.
	NextCursor string `json:"next_cursor"`
}

// QueryResult is a query's answer: Results for a plain query, Groups for an aggregation.
type QueryResult struct {
	// Results are the matching documents (absent for an aggregation).
	Results []QueryRow `json:"results"`
	// Groups are the aggregation's rows, each a JSON object of the group fields and outputs.
	Groups []json.RawMessage `json:"groups"`
	// Total counts the rows (or groups) before the query's limit.
	Total int `json:"total"`
	// Namespace is the namespace queried.
	Namespace string `json:"namespace"`
	// Plan is the query plan, when the query asked for "explain".
	Plan json.RawMessage `json:"plan"`
}

// QueryRow is one document of a query's answer.
type QueryRow struct {
	// Key is the document's key.
	Key string `json:"key"`
	// Value is the document's JSON text.
	Value json.RawMessage `json:"value"`
	// VersionID is the version the query read.
	VersionID string `json:"version_id"`
	// Timestamp is that version's commit moment (UTC, microseconds).
	Timestamp time.Time `json:"timestamp"`
	// Relevance is the text-search score, when the query has a text_search.
	Relevance *float64 `json:"_relevance"`
	// Highlight is the text search's highlighted fragment, when asked for.
	Highlight json.RawMessage `json:"highlight"`
	// Joined is the joined document, for a query with a join.
	Joined json.RawMessage `json:"joined"`
}

// Decode unmarshals the row's value into v, as json.Unmarshal would.
func (r *QueryRow) Decode(v any) error { return json.Unmarshal(r.Value, v) }

// BatchWrite is one write of a BatchPut: a value to put, or a delete. Build them with PutOp
// and DeleteOp.
type BatchWrite struct {
	Namespace string
	Key       string
	// Value is any JSON-marshalable value (ignored on a delete).
	Value any
	// Delete makes the write a delete version.
	Delete bool
}

// PutOp is a BatchWrite putting value at namespace/key.
func PutOp(namespace, key string, value any) BatchWrite {
	return BatchWrite{Namespace: namespace, Key: key, Value: value}
}

// DeleteOp is a BatchWrite deleting namespace/key.
func DeleteOp(namespace, key string) BatchWrite {
	return BatchWrite{Namespace: namespace, Key: key, Delete: true}
}

// MarshalJSON gives the HTTP API's shape: {"namespace","key","value"} or {..., "delete": true}.
func (w BatchWrite) MarshalJSON() ([]byte, error) {
	if w.Delete {
		return json.Marshal(struct {
			Namespace string `json:"namespace"`
			Key       string `json:"key"`
			Delete    bool   `json:"delete"`
		}{w.Namespace, w.Key, true})
	}
	return json.Marshal(struct {
		Namespace string `json:"namespace"`
		Key       string `json:"key"`
		Value     any    `json:"value"`
	}{w.Namespace, w.Key, w.Value})
}

// BatchResult is the answer to a BatchPut: one log record holding every write.
type BatchResult struct {
	// LSN is the record's log sequence number (compare with ChangesPage.LastLSN).
	LSN uint64 `json:"lsn"`
	// Timestamp is the moment the batch was committed; every write of it has this moment.
	Timestamp time.Time `json:"timestamp"`
	// Results are the versions made, in the order of the writes.
	Results []BatchWritten `json:"results"`
}

// BatchWritten is the version one write of a batch made.
type BatchWritten struct {
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	// VersionID is the new version's id.
	VersionID string `json:"version_id"`
	// PreviousVersion is the version it replaced; "" for a new key.
	PreviousVersion string `json:"previous_version"`
}

// BatchKey is one key of a BatchGet, read now or as of At.
type BatchKey struct {
	Namespace string
	Key       string
	// At, when not zero, reads the version current at that moment.
	At time.Time
}

// MarshalJSON gives the HTTP API's shape {"namespace","key","at"?}.
func (k BatchKey) MarshalJSON() ([]byte, error) {
	body := struct {
		Namespace string `json:"namespace"`
		Key       string `json:"key"`
		At        string `json:"at,omitempty"`
	}{Namespace: k.Namespace, Key: k.Key}
	if !k.At.IsZero() {
		body.At = FormatTime(k.At)
	}
	return json.Marshal(body)
}

// BatchItem is the answer for one key of a BatchGet.
type BatchItem struct {
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	// Found is false when the key did not exist (or was deleted) at that moment; the fields
	// below are then empty.
	Found bool `json:"found"`
	// Value is the JSON text of the value.
	Value json.RawMessage `json:"value"`
	// VersionID is the version read.
	VersionID string `json:"version_id"`
	// Timestamp is that version's commit moment (UTC, microseconds).
	Timestamp time.Time `json:"timestamp"`
	// PreviousVersion is the version before it; "" for the key's first version.
	PreviousVersion string `json:"previous_version"`
}

// Decode unmarshals the value into v, as json.Unmarshal would.
func (b *BatchItem) Decode(v any) error { return json.Unmarshal(b.Value, v) }

// ChangesPage is a page of the change feed: committed records after an LSN, in order.
type ChangesPage struct {
	// Changes are the records, oldest first.
	Changes []Change `json:"changes"`
	// NextSince is the LSN to pass as since for the next page.
	NextSince uint64 `json:"next_since"`
	// LastLSN is the last committed LSN; keep asking while NextSince < LastLSN.
	LastLSN uint64 `json:"last_lsn"`
}

// Change is one committed record of the log: one write, or a whole batch.
type Change struct {
	// LSN is the record's log sequence number.
	LSN uint64 `json:"lsn"`
	// Timestamp is the moment it was committed.
	Timestamp time.Time `json:"timestamp"`
	// Ops are its writes, in order.
	Ops []ChangeOp `json:"ops"`
}

// ChangeOp is one write of a change record.
type ChangeOp struct {
	// Op is "put" or "delete".
	Op        string `json:"op"`
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	// VersionID is the version the write made.
	VersionID string `json:"version_id"`
	// Value is the JSON text put; empty on a delete.
	Value json.RawMessage `json:"value"`
}

// timeLayout is the HTTP API's timestamp form: RFC 3339 in UTC with microseconds.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// FormatTime gives t as the HTTP API writes timestamps: RFC 3339, UTC, microseconds
// ("2026-11-25T12:00:00.123456Z").
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// ParseTime reads an RFC 3339 timestamp with any offset, as the server accepts it, in UTC. Text
// that is not RFC 3339 is an *Error with code bad_request, the server's answer to it.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &Error{Code: "bad_request", Message: "invalid timestamp " + quote(s) + " (use RFC 3339, e.g. 2026-01-31T12:00:00Z)"}
	}
	return t.UTC(), nil
}

// quote is strconv.Quote without importing it everywhere errors are built.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
