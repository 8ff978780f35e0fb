package koru_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readyLine is what koru-dataplane prints on stdout once it serves (testkit's DATAPLANE_READY).
const readyLine = "koru-dataplane listening on "

// dataplaneBinary finds the server the tests start: KORU_DATAPLANE_BIN, else the debug build
// in CARGO_TARGET_DIR (or the project's default target dir). Without one the test fails under
// CI=true and is skipped loudly elsewhere.
func dataplaneBinary(t testing.TB) string {
	t.Helper()
	path := os.Getenv("KORU_DATAPLANE_BIN")
	if path == "" {
		target := os.Getenv("CARGO_TARGET_DIR")
		if target == "" {
			home, _ := os.UserHomeDir()
			target = filepath.Join(home, ".cache", "koru-delta-cloud", "target")
		}
		path = filepath.Join(target, "debug", "koru-dataplane")
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("koru-dataplane not found at %s (set KORU_DATAPLANE_BIN, or run scripts/bindings/go.sh): %v", path, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "SKIPPING:", msg)
		t.Skip(msg)
	}
	return path
}

// server is a koru-dataplane child process on a fresh data directory.
type server struct {
	URL    string
	cmd    *exec.Cmd
	stderr *lockedBuffer
}

// startServer starts koru-dataplane on a new temporary data directory, listening on listen
// ("127.0.0.1:0" for a free port), and stops it when the test ends.
func startServer(t testing.TB, listen string, extra ...string) *server {
	t.Helper()
	bin := dataplaneBinary(t)
	args := append([]string{"--data-dir", t.TempDir(), "--listen", listen}, extra...)
	cmd := exec.Command(bin, args...)
	// The server also reads KORU_* variables; only the test's arguments count.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KORU_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "KORU_LOG=warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	s := &server{cmd: cmd, stderr: stderr}
	t.Cleanup(s.stop)
	urls := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if rest, ok := strings.CutPrefix(scanner.Text(), readyLine); ok {
				urls <- strings.TrimSpace(rest)
			}
		}
		close(urls)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case url, ok := <-urls:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("koru-dataplane exited before serving: %v\n%s", cmd.ProcessState, stderr.String())
		}
		s.URL = url
	case <-time.After(60 * time.Second):
		t.Fatalf("koru-dataplane printed no URL within 60 s\n%s", stderr.String())
	}
	return s
}

// stop asks the server to finish (SIGTERM) and kills it if it takes more than 10 s.
func (s *server) stop() {
	if s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// lockedBuffer collects the server's stderr for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
