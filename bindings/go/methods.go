package koru

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// WriteOption configures a Put or Delete.
type WriteOption func(*request)

// IfMatch makes a Put or Delete compare-and-set: it writes only if versionID is still the key's
// latest version (a delete counts as one); otherwise it fails with ErrVersionMismatch and
// writes nothing. Pass the VersionID of the Entry you read, or of your last write.
func IfMatch(versionID string) WriteOption {
	return func(r *request) {
		if r.header == nil {
			r.header = map[string]string{}
		}
		r.header["If-Match"] = versionID
	}
}

// HistoryOption configures History (Limit, Cursor).
type HistoryOption interface{ applyHistory(url.Values) }

// KeysOption configures Keys (Prefix, Limit, Cursor).
type KeysOption interface{ applyKeys(url.Values) }

// ChangesOption configures Changes (Limit).
type ChangesOption interface{ applyChanges(url.Values) }

// LimitOption caps a page; see Limit.
type LimitOption int

// Limit ends a page of History, Keys or Changes after n entries (the server takes 1 to 100,000
// for keys and histories, 1 to 10,000 for changes; anything else is ErrBadRequest).
func Limit(n int) LimitOption { return LimitOption(n) }

func (o LimitOption) applyHistory(q url.Values) { q.Set("limit", strconv.Itoa(int(o))) }
func (o LimitOption) applyKeys(q url.Values)    { q.Set("limit", strconv.Itoa(int(o))) }
func (o LimitOption) applyChanges(q url.Values) { q.Set("limit", strconv.Itoa(int(o))) }

// CursorOption asks for the page after a cursor; see Cursor.
type CursorOption string

// Cursor asks History or Keys for the page after the one whose NextCursor this is.
func Cursor(next string) CursorOption { return CursorOption(next) }

func (o CursorOption) applyHistory(q url.Values) { q.Set("cursor", string(o)) }
func (o CursorOption) applyKeys(q url.Values)    { q.Set("cursor", string(o)) }

// PrefixOption filters Keys; see Prefix.
type PrefixOption string

// Prefix lists only the keys starting with p.
func Prefix(p string) PrefixOption { return PrefixOption(p) }

func (o PrefixOption) applyKeys(q url.Values) { q.Set("prefix", string(o)) }

// keyPath is the API path of a key, each part one escaped segment.
func keyPath(namespace, key string) string { return "/" + escape(namespace) + "/" + escape(key) }

// Put writes value (anything json.Marshal takes; a json.RawMessage is sent as it is) as the
// new version of namespace/key.
func (db *DB) Put(namespace, key string, value any, opts ...WriteOption) (*Written, error) {
	return db.PutContext(context.Background(), namespace, key, value, opts...)
}

// PutContext is Put with a context.
func (db *DB) PutContext(ctx context.Context, namespace, key string, value any, opts ...WriteOption) (*Written, error) {
	if db == nil {
		return nil, errNoValue
	}
	v, err := valueJSON(value)
	if err != nil {
		return nil, err
	}
	body := make([]byte, 0, len(v)+10)
	body = append(append(append(body, `{"value":`...), v...), '}')
	req := request{method: http.MethodPut, path: keyPath(namespace, key), body: body}
	for _, o := range opts {
		o(&req)
	}
	var out Written
	if err := db.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete writes a delete version of namespace/key; ErrNotFound if it is absent or already deleted.
// Its history keeps every version before it.
func (db *DB) Delete(namespace, key string, opts ...WriteOption) (*Written, error) {
	return db.DeleteContext(context.Background(), namespace, key, opts...)
}

// DeleteContext is Delete with a context.
func (db *DB) DeleteContext(ctx context.Context, namespace, key string, opts ...WriteOption) (*Written, error) {
	if db == nil {
		return nil, errNoValue
	}
	req := request{method: http.MethodDelete, path: keyPath(namespace, key)}
	for _, o := range opts {
		o(&req)
	}
	var out Written
	if err := db.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get reads the latest version of namespace/key; ErrNotFound if it never existed or was deleted.
func (db *DB) Get(namespace, key string) (*Entry, error) {
	return db.GetContext(context.Background(), namespace, key)
}

// GetContext is Get with a context.
func (db *DB) GetContext(ctx context.Context, namespace, key string) (*Entry, error) {
	return db.entry(ctx, keyPath(namespace, key))
}

// GetAt reads the version of namespace/key current at moment at (the last one written at or
// before it); ErrNotFound if the key did not exist or was deleted then.
func (db *DB) GetAt(namespace, key string, at time.Time) (*Entry, error) {
	return db.GetAtContext(context.Background(), namespace, key, at)
}

// GetAtContext is GetAt with a context.
func (db *DB) GetAtContext(ctx context.Context, namespace, key string, at time.Time) (*Entry, error) {
	return db.entry(ctx, keyPath(namespace, key)+"/at/"+escape(FormatTime(at)))
}

// entry GETs path and reads an Entry.
func (db *DB) entry(ctx context.Context, path string) (*Entry, error) {
	if db == nil {
		return nil, errNoValue
	}
	var out Entry
	if err := db.do(ctx, request{method: http.MethodGet, path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// History reads the versions of namespace/key, oldest first, delete versions included; a long
// history comes in pages (follow NextCursor with Cursor). ErrNotFound for a key never written.
func (db *DB) History(namespace, key string, opts ...HistoryOption) (*HistoryPage, error) {
	return db.HistoryContext(context.Background(), namespace, key, opts...)
}

// HistoryContext is History with a context.
func (db *DB) HistoryContext(ctx context.Context, namespace, key string, opts ...HistoryOption) (*HistoryPage, error) {
	if db == nil {
		return nil, errNoValue
	}
	q := url.Values{}
	for _, o := range opts {
		o.applyHistory(q)
	}
	var out HistoryPage
	if err := db.do(ctx, request{method: http.MethodGet, path: keyPath(namespace, key) + "/history", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Query runs a query over namespace: query is the HTTP API's query body (dataplane/API.md,
// "Queries v2"), as a map, a struct or a json.RawMessage, e.g.
// map[string]any{"filter": map[string]any{"field": "age", "op": "gt", "value": 26}}. A nil
// query lists the namespace.
func (db *DB) Query(namespace string, query any) (*QueryResult, error) {
	return db.QueryContext(context.Background(), namespace, query)
}

// QueryContext is Query with a context.
func (db *DB) QueryContext(ctx context.Context, namespace string, query any) (*QueryResult, error) {
	if db == nil {
		return nil, errNoValue
	}
	if query == nil {
		query = struct{}{}
	}
	body, err := json.Marshal(query)
	if err != nil {
		return nil, &Error{Code: "malformed_json", Message: "the query is not JSON-marshalable: " + err.Error()}
	}
	var out QueryResult
	if err := db.do(ctx, request{method: http.MethodPost, path: "/" + escape(namespace) + "/query", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BatchPut applies writes as one log record: all of them or, if any is refused, none.
func (db *DB) BatchPut(writes []BatchWrite) (*BatchResult, error) {
	return db.BatchPutContext(context.Background(), writes)
}

// BatchPutContext is BatchPut with a context.
func (db *DB) BatchPutContext(ctx context.Context, writes []BatchWrite) (*BatchResult, error) {
	if db == nil {
		return nil, errNoValue
	}
	body, err := batchBody(writes)
	if err != nil {
		return nil, err
	}
	var out BatchResult
	if err := db.do(ctx, request{method: http.MethodPost, path: "/batch", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BatchGet reads several keys in one request, each now or as of its own At; the answer has one
// item per key, in order, with Found false for a key absent at that moment.
func (db *DB) BatchGet(keys []BatchKey) ([]BatchItem, error) {
	return db.BatchGetContext(context.Background(), keys)
}

// BatchGetContext is BatchGet with a context.
func (db *DB) BatchGetContext(ctx context.Context, keys []BatchKey) ([]BatchItem, error) {
	if db == nil {
		return nil, errNoValue
	}
	if keys == nil {
		keys = []BatchKey{}
	}
	body, err := json.Marshal(struct {
		Keys []BatchKey `json:"keys"`
	}{keys})
	if err != nil {
		return nil, err
	}
	var out struct {
		Results []BatchItem `json:"results"`
	}
	if err := db.do(ctx, request{method: http.MethodPost, path: "/batch/get", body: body}, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// Changes reads the change feed: the committed records after LSN since (0: from the start), in
// order. Follow it by passing NextSince back; more follow while NextSince < LastLSN.
func (db *DB) Changes(since uint64, opts ...ChangesOption) (*ChangesPage, error) {
	return db.ChangesContext(context.Background(), since, opts...)
}

// ChangesContext is Changes with a context.
func (db *DB) ChangesContext(ctx context.Context, since uint64, opts ...ChangesOption) (*ChangesPage, error) {
	if db == nil {
		return nil, errNoValue
	}
	q := url.Values{"since": {strconv.FormatUint(since, 10)}}
	for _, o := range opts {
		o.applyChanges(q)
	}
	var out ChangesPage
	if err := db.do(ctx, request{method: http.MethodGet, path: "/changes", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Keys lists the live keys of namespace in byte order, in pages (follow NextCursor with Cursor).
func (db *DB) Keys(namespace string, opts ...KeysOption) (*KeysPage, error) {
	return db.KeysContext(context.Background(), namespace, opts...)
}

// KeysContext is Keys with a context.
func (db *DB) KeysContext(ctx context.Context, namespace string, opts ...KeysOption) (*KeysPage, error) {
	if db == nil {
		return nil, errNoValue
	}
	q := url.Values{}
	for _, o := range opts {
		o.applyKeys(q)
	}
	var out KeysPage
	if err := db.do(ctx, request{method: http.MethodGet, path: "/" + escape(namespace) + "/keys", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Namespaces lists the namespaces holding at least one live key, sorted.
func (db *DB) Namespaces() ([]string, error) {
	return db.NamespacesContext(context.Background())
}

// NamespacesContext is Namespaces with a context.
func (db *DB) NamespacesContext(ctx context.Context) ([]string, error) {
	if db == nil {
		return nil, errNoValue
	}
	var out struct {
		Namespaces []string `json:"namespaces"`
	}
	if err := db.do(ctx, request{method: http.MethodGet, path: "/namespaces"}, &out); err != nil {
		return nil, err
	}
	if out.Namespaces == nil {
		out.Namespaces = []string{}
	}
	return out.Namespaces, nil
}

// valueJSON is the JSON text of a value: a json.RawMessage as it is (the server checks it),
// anything else through json.Marshal.
func valueJSON(value any) ([]byte, error) {
	if raw, ok := value.(json.RawMessage); ok && len(raw) > 0 {
		return raw, nil
	}
	v, err := json.Marshal(value)
	if err != nil {
		return nil, &Error{Code: "malformed_json", Message: "the value is not JSON-marshalable: " + err.Error()}
	}
	return v, nil
}

// batchBody writes {"writes": [...]} itself: json.Marshal would re-scan every value's text once
// per level of nesting, which was most of the client's CPU time on large batches.
func batchBody(writes []BatchWrite) ([]byte, error) {
	body := make([]byte, 0, 64+len(writes)*96)
	body = append(body, `{"writes":[`...)
	for i, w := range writes {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"namespace":`...)
		body = appendString(body, w.Namespace)
		body = append(body, `,"key":`...)
		body = appendString(body, w.Key)
		if w.Delete {
			body = append(body, `,"delete":true}`...)
			continue
		}
		v, err := valueJSON(w.Value)
		if err != nil {
			return nil, err
		}
		body = append(append(append(body, `,"value":`...), v...), '}')
	}
	return append(body, "]}"...), nil
}

// appendString appends s as a JSON string; names are usually plain ASCII, which needs no escaping.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(dst, q...)
		}
	}
	return append(append(append(dst, '"'), s...), '"')
}
