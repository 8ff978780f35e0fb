package koru_test

// The shared conformance vectors (bindings/conformance/*.json, format in its README.md), each
// file on a fresh koru-dataplane child process, through this client's own methods.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	koru "github.com/koru-delta/go-client"
)

// vectorFile is one scenario of the suite.
type vectorFile struct {
	Name  string            `json:"name"`
	Steps []json.RawMessage `json:"steps"`
}

func TestConformance(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "conformance", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors under ../conformance: %v", err)
	}
	for _, file := range files {
		file := file
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var v vectorFile
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			db := connect(t)
			saved := map[string]any{}
			for i, raw := range v.Steps {
				runStep(t, db, saved, fmt.Sprintf("%s step %d", v.Name, i), raw)
			}
		})
	}
}

// runStep runs one step: substitutes saved results, calls the client, checks the outcome.
func runStep(t *testing.T, db *koru.DB, saved map[string]any, where string, raw json.RawMessage) {
	t.Helper()
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	step, ok := substitute(t, where, generic, saved).(map[string]any)
	if !ok {
		t.Fatalf("%s: not an object", where)
	}
	result, err := call(db, step)
	want, wantErr := step["expect_error"].(string)
	if wantErr {
		var kerr *koru.Error
		if !errors.As(err, &kerr) || kerr.Code != want {
			t.Fatalf("%s (%s): want error %q, got %v (result %v)", where, step["op"], want, err, result)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s (%s): %v", where, step["op"], err)
	}
	if exp, ok := step["expect"]; ok {
		if msg := match(exp, result, "result"); msg != "" {
			got, _ := json.Marshal(result)
			t.Fatalf("%s (%s): %s\ngot %s", where, step["op"], msg, got)
		}
	}
	if name, ok := step["save"].(string); ok {
		saved[name] = result
	}
}

// call runs a step's op with this client and gives its canonical result (plain JSON values).
func call(db *koru.DB, s map[string]any) (any, error) {
	ns, _ := s["namespace"].(string)
	key, _ := s["key"].(string)
	var writeOpts []koru.WriteOption
	if v, ok := s["if_match"].(string); ok {
		writeOpts = append(writeOpts, koru.IfMatch(v))
	}
	switch op := s["op"]; op {
	case "put":
		w, err := db.Put(ns, key, rawJSON(s["value"]), writeOpts...)
		return canonicalWritten(w), err
	case "delete":
		w, err := db.Delete(ns, key, writeOpts...)
		return canonicalWritten(w), err
	case "get":
		e, err := db.Get(ns, key)
		return canonicalEntry(e), err
	case "get_at":
		at, err := koru.ParseTime(s["at"].(string))
		if err != nil {
			return nil, err
		}
		e, err := db.GetAt(ns, key, at)
		return canonicalEntry(e), err
	case "history":
		var opts []koru.HistoryOption
		if c, ok := s["cursor"].(string); ok {
			opts = append(opts, koru.Cursor(c))
		}
		if l, ok := s["limit"].(float64); ok {
			opts = append(opts, koru.Limit(int(l)))
		}
		h, err := db.History(ns, key, opts...)
		if err != nil {
			return nil, err
		}
		versions := []any{}
		for _, v := range h.Versions {
			c := map[string]any{"value": plain(v.Value), "version_id": v.VersionID, "timestamp": koru.FormatTime(v.Timestamp)}
			if v.Deleted {
				c["deleted"] = true
			}
			versions = append(versions, c)
		}
		return map[string]any{"versions": versions, "next_cursor": orNull(h.NextCursor)}, nil
	case "query":
		q, err := db.Query(ns, rawJSON(s["query"]))
		if err != nil {
			return nil, err
		}
		out := map[string]any{"total": float64(q.Total)}
		if q.Groups != nil {
			groups := []any{}
			for _, g := range q.Groups {
				groups = append(groups, plain(g))
			}
			out["groups"] = groups
		} else {
			results := []any{}
			for _, r := range q.Results {
				results = append(results, map[string]any{"key": r.Key, "value": plain(r.Value), "version_id": r.VersionID, "timestamp": koru.FormatTime(r.Timestamp)})
			}
			out["results"] = results
		}
		return out, nil
	case "batch_put":
		writes := []koru.BatchWrite{}
		for _, w := range s["writes"].([]any) {
			m := w.(map[string]any)
			if del, _ := m["delete"].(bool); del {
				writes = append(writes, koru.DeleteOp(m["namespace"].(string), m["key"].(string)))
			} else {
				writes = append(writes, koru.PutOp(m["namespace"].(string), m["key"].(string), rawJSON(m["value"])))
			}
		}
		b, err := db.BatchPut(writes)
		if err != nil {
			return nil, err
		}
		results := []any{}
		for _, r := range b.Results {
			results = append(results, map[string]any{"namespace": r.Namespace, "key": r.Key, "version_id": r.VersionID, "previous_version": orNull(r.PreviousVersion)})
		}
		return map[string]any{"results": results, "timestamp": koru.FormatTime(b.Timestamp), "lsn": float64(b.LSN)}, nil
	case "batch_get":
		keys := []koru.BatchKey{}
		for _, k := range s["keys"].([]any) {
			m := k.(map[string]any)
			bk := koru.BatchKey{Namespace: m["namespace"].(string), Key: m["key"].(string)}
			if at, ok := m["at"].(string); ok {
				t, err := koru.ParseTime(at)
				if err != nil {
					return nil, err
				}
				bk.At = t
			}
			keys = append(keys, bk)
		}
		items, err := db.BatchGet(keys)
		if err != nil {
			return nil, err
		}
		results := []any{}
		for _, it := range items {
			c := map[string]any{"namespace": it.Namespace, "key": it.Key, "found": it.Found}
			if it.Found {
				c["value"], c["version_id"], c["timestamp"] = plain(it.Value), it.VersionID, koru.FormatTime(it.Timestamp)
				c["previous_version"] = orNull(it.PreviousVersion)
			}
			results = append(results, c)
		}
		return map[string]any{"results": results}, nil
	case "keys":
		var opts []koru.KeysOption
		if p, ok := s["prefix"].(string); ok {
			opts = append(opts, koru.Prefix(p))
		}
		if c, ok := s["cursor"].(string); ok {
			opts = append(opts, koru.Cursor(c))
		}
		if l, ok := s["limit"].(float64); ok {
			opts = append(opts, koru.Limit(int(l)))
		}
		k, err := db.Keys(ns, opts...)
		if err != nil {
			return nil, err
		}
		keys := []any{}
		for _, key := range k.Keys {
			keys = append(keys, key)
		}
		return map[string]any{"keys": keys, "next_cursor": orNull(k.NextCursor)}, nil
	case "changes":
		var since uint64
		if v, ok := s["since"].(float64); ok {
			since = uint64(v)
		}
		var opts []koru.ChangesOption
		if l, ok := s["limit"].(float64); ok {
			opts = append(opts, koru.Limit(int(l)))
		}
		c, err := db.Changes(since, opts...)
		if err != nil {
			return nil, err
		}
		changes := []any{}
		for _, ch := range c.Changes {
			ops := []any{}
			for _, o := range ch.Ops {
				ops = append(ops, map[string]any{"op": o.Op, "namespace": o.Namespace, "key": o.Key, "version_id": o.VersionID, "value": plain(o.Value)})
			}
			changes = append(changes, map[string]any{"lsn": float64(ch.LSN), "timestamp": koru.FormatTime(ch.Timestamp), "ops": ops})
		}
		return map[string]any{"changes": changes, "next_since": float64(c.NextSince), "last_lsn": float64(c.LastLSN)}, nil
	case "namespaces":
		ns, err := db.Namespaces()
		if err != nil {
			return nil, err
		}
		out := []any{}
		for _, n := range ns {
			out = append(out, n)
		}
		return map[string]any{"namespaces": out}, nil
	default:
		return nil, fmt.Errorf("unknown op %v", op)
	}
}

func canonicalWritten(w *koru.Written) any {
	if w == nil {
		return nil
	}
	return map[string]any{"version_id": w.VersionID, "timestamp": koru.FormatTime(w.Timestamp), "previous_version": orNull(w.PreviousVersion)}
}

func canonicalEntry(e *koru.Entry) any {
	if e == nil {
		return nil
	}
	return map[string]any{"value": plain(e.Value), "version_id": e.VersionID, "timestamp": koru.FormatTime(e.Timestamp), "previous_version": orNull(e.PreviousVersion)}
}

// rawJSON gives a vector's value back as JSON text, so the client sends it as it is.
func rawJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// plain decodes JSON text into plain values (nil for no text).
func plain(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Sprintf("<invalid JSON %q>", raw)
	}
	return v
}

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// substitute replaces every "$name.field..." string by that field of a saved result ("$any" stays).
func substitute(t *testing.T, where string, v any, saved map[string]any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[k] = substitute(t, where, item, saved)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = substitute(t, where, item, saved)
		}
		return out
	case string:
		if !strings.HasPrefix(x, "$") || x == "$any" {
			return x
		}
		parts := strings.Split(x[1:], ".")
		cur, ok := saved[parts[0]]
		if !ok {
			t.Fatalf("%s: %s names no saved result", where, x)
		}
		for _, p := range parts[1:] {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[p]
			case []any:
				i, err := strconv.Atoi(p)
				if err != nil || i >= len(c) {
					t.Fatalf("%s: %s: no element %s", where, x, p)
				}
				cur = c[i]
			default:
				t.Fatalf("%s: %s: cannot take %s of %v", where, x, p, cur)
			}
		}
		return cur
	}
	return v
}

// match says how actual fails to contain expected (subset matching, README.md), or "".
func match(expected, actual any, path string) string {
	if s, ok := expected.(string); ok && s == "$any" {
		return ""
	}
	switch e := expected.(type) {
	case nil:
		if actual != nil {
			return fmt.Sprintf("%s: want null, got %v", path, actual)
		}
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: want an object, got %v", path, actual)
		}
		for k, ev := range e {
			if msg := match(ev, a[k], path+"."+k); msg != "" {
				return msg
			}
		}
	case []any:
		a, ok := actual.([]any)
		if !ok || len(a) != len(e) {
			return fmt.Sprintf("%s: want %d elements, got %v", path, len(e), actual)
		}
		for i := range e {
			if msg := match(e[i], a[i], fmt.Sprintf("%s.%d", path, i)); msg != "" {
				return msg
			}
		}
	default:
		if !reflect.DeepEqual(expected, actual) {
			return fmt.Sprintf("%s: want %v, got %v", path, expected, actual)
		}
	}
	return ""
}

// TestMatcher checks that the runner's matching can fail, so a passing suite means something.
func TestMatcher(t *testing.T) {
	var actual any
	_ = json.Unmarshal([]byte(`{"a": 30, "b": [1, {"c": null}], "d": "x"}`), &actual)
	for exp, want := range map[string]bool{
		`{"a": 30.0}`:                true,
		`{"a": "$any", "zz": null}`:  true,
		`{"b": [1, {"c": null}]}`:    true,
		`{"b": [1, {"c": "$any"}]}`:  true,
		`{"a": 31}`:                  false,
		`{"b": [1]}`:                 false,
		`{"zz": 1}`:                  false,
		`{"d": null}`:                false,
		`{"b": [1, {"c": null}, 3]}`: false,
		`{"a": "30"}`:                false,
	} {
		var e any
		if err := json.Unmarshal([]byte(exp), &e); err != nil {
			t.Fatal(err)
		}
		if got := match(e, actual, "r") == ""; got != want {
			t.Errorf("match(%s) = %v, want %v", exp, got, want)
		}
	}
}
