package koru_test

// Client-mode throughput against a real koru-dataplane (scripts/bindings/go.sh bench uses a
// release build): single PUTs and GETs, one caller and many, and batches. Each benchmark reports
// req/s (and versions/s for batches) so the figures compare with `koru-bench http` on the same
// server (dataplane/BENCHMARKS.md).

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	koru "github.com/koru-delta/go-client"
)

// benchCallers is how many goroutines the parallel benchmarks run, like koru-bench's
// --connections (the client keeps up to 64 idle connections per host, so each has its own).
const benchCallers = 32

// benchDB starts a server for one benchmark and connects to it.
func benchDB(b *testing.B) *koru.DB {
	b.Helper()
	s := startServer(b, "127.0.0.1:0")
	db, err := koru.Connect(s.URL)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// value is a small document, about the size koru-bench's PUT load sends.
var value = map[string]any{"name": "Alice", "age": 30, "city": "Paris", "tags": []string{"a", "b"}}

// clock is a moment of wall time and of this process's CPU time (the client's, the server
// being another process), so a benchmark can say how much of a core the client took.
type clock struct {
	wall time.Time
	cpu  time.Duration
}

// reportRate adds req/s (and versions/s when perRequest > 1) and the client's share of a core
// to the benchmark's line.
func reportRate(b *testing.B, start clock, perRequest int) {
	end := now()
	secs := end.wall.Sub(start.wall).Seconds()
	b.ReportMetric(float64(b.N)/secs, "req/s")
	if perRequest > 1 {
		b.ReportMetric(float64(b.N*perRequest)/secs, "versions/s")
	}
	b.ReportMetric(100*(end.cpu-start.cpu).Seconds()/secs, "client-cpu-%")
}

func BenchmarkPut(b *testing.B) {
	db := benchDB(b)
	b.ResetTimer()
	start := now()
	for i := 0; i < b.N; i++ {
		if _, err := db.Put("bench", "k"+strconv.Itoa(i%10000), value); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start, 1)
}

func BenchmarkPutParallel(b *testing.B) {
	db := benchDB(b)
	var n atomic.Int64
	b.SetParallelism((benchCallers + 1) / 2) // RunParallel starts SetParallelism × GOMAXPROCS goroutines
	b.ResetTimer()
	start := now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Put("bench", "k"+strconv.FormatInt(n.Add(1)%10000, 10), value); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, start, 1)
}

// fill writes n keys for the read benchmarks, in batches.
func fill(b *testing.B, db *koru.DB, n int) {
	b.Helper()
	for i := 0; i < n; i += 1000 {
		writes := make([]koru.BatchWrite, 0, 1000)
		for j := i; j < i+1000 && j < n; j++ {
			writes = append(writes, koru.PutOp("bench", "k"+strconv.Itoa(j), value))
		}
		if _, err := db.BatchPut(writes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	db := benchDB(b)
	fill(b, db, 10000)
	b.ResetTimer()
	start := now()
	for i := 0; i < b.N; i++ {
		if _, err := db.Get("bench", "k"+strconv.Itoa(i%10000)); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start, 1)
}

func BenchmarkGetParallel(b *testing.B) {
	db := benchDB(b)
	fill(b, db, 10000)
	var n atomic.Int64
	b.SetParallelism((benchCallers + 1) / 2)
	b.ResetTimer()
	start := now()
	b.RunParallel(func(pb *testing.PB) {
		var e *koru.Entry
		var err error
		for pb.Next() {
			if e, err = db.Get("bench", "k"+strconv.FormatInt(n.Add(1)%10000, 10)); err != nil || len(e.Value) == 0 {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, start, 1)
}

// BenchmarkBatchPut sends batches of Go maps (marshalled on every request, as a program would)
// and of values already JSON (json.RawMessage), which shows what encoding/json costs.
func BenchmarkBatchPut(b *testing.B) {
	raw, err := json.Marshal(value)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		size  int
		value any
		kind  string
	}{{100, value, "map"}, {100, json.RawMessage(raw), "raw"}, {1000, value, "map"}, {1000, json.RawMessage(raw), "raw"}} {
		size := c.size
		b.Run(fmt.Sprintf("size=%d/%s", size, c.kind), func(b *testing.B) {
			db := benchDB(b)
			writes := make([]koru.BatchWrite, size)
			for j := range writes {
				writes[j] = koru.PutOp("bench", "k"+strconv.Itoa(j), c.value)
			}
			b.SetParallelism((benchCallers + 1) / 2)
			b.ResetTimer()
			start := now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.BatchPut(writes); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRate(b, start, size)
		})
	}
}

func BenchmarkBatchGet100(b *testing.B) {
	db := benchDB(b)
	fill(b, db, 10000)
	keys := make([]koru.BatchKey, 100)
	var n atomic.Int64
	b.SetParallelism((benchCallers + 1) / 2)
	b.ResetTimer()
	start := now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]koru.BatchKey, len(keys))
		for pb.Next() {
			base := int(n.Add(1) * 100 % 10000)
			for j := range local {
				local[j] = koru.BatchKey{Namespace: "bench", Key: "k" + strconv.Itoa((base+j)%10000)}
			}
			if items, err := db.BatchGet(local); err != nil || !items[0].Found {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, start, 100)
}
