package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const pkg = "github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo"

// buildBinary builds birthday-app with the commit and build time set by
// -ldflags, as release builds do.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "birthday-app")
	cmd := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X "+pkg+".Commit=feedc0de1234 -X "+pkg+".BuildTime=2025-05-01T12:00:00Z", ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running birthday-app.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	lines  []map[string]any
	exited chan error
}

// start runs the binary and waits for its "listening" log line.
func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan error, 1)}
	listening := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("stdout line %q is not JSON: %v", sc.Text(), err)
				continue
			}
			p.mu.Lock()
			p.lines = append(p.lines, m)
			p.mu.Unlock()
			if m["msg"] == "listening" {
				listening <- m["addr"].(string)
			}
		}
	}()
	go func() {
		<-scanned
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w; stderr: %s", err, stderr.String())
		}
		p.exited <- err
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	select {
	case p.addr = <-listening:
	case err := <-p.exited:
		t.Fatalf("birthday-app exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("birthday-app did not log that it listens within 30 s")
	}
	return p
}

func (p *proc) logged(msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

func (p *proc) request(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBinary builds and starts the real binary on SQLite, sends traffic,
// then sends SIGTERM while a PUT is in flight (its body held open): the
// process reports 503 on /statusz during the shutdown delay, closes its
// listener, completes the PUT with 204, and exits 0.
func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	db := filepath.Join(t.TempDir(), "birthday.db")
	p := start(t, bin, "-listen", "127.0.0.1:0", "-db", "sqlite://"+db, "-shutdown-delay", "500ms")

	today := time.Now().UTC()
	tomorrow := today.AddDate(0, 0, 1)
	// Born 30 years before tomorrow (Feb 29 aside): the birthday is in 1 day.
	dob := time.Date(tomorrow.Year()-30, tomorrow.Month(), tomorrow.Day(), 0, 0, 0, 0, time.UTC)
	for _, s := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/statusz", "", 200, `"ok"`},
		{"GET", "/healthz", "", 200, `"ok"`},
		{"GET", "/version", "", 200, `"commit":"feedc0de1234","buildTime":"2025-05-01T12:00:00Z"`},
		{"PUT", "/hello/alice", `{"dateOfBirth":"` + dob.Format(time.DateOnly) + `"}`, 204, ""},
		{"GET", "/hello/alice", "", 200, `"message":"Hello, alice! Your birthday is in 1 day"`},
		{"PUT", "/hello/alice", `{"dateOfBirth":"` + today.Format(time.DateOnly) + `"}`, 400, "must be before today"},
		{"GET", "/hello/bob", "", 404, `"error"`},
		{"POST", "/hello/bob", "", 405, `"error"`},
		{"GET", "/metrics", "", 200, `birthday_http_requests_total{code="204",method="PUT",route="/hello/{username}"} 1`},
	} {
		if dob.Month() == 2 && dob.Day() == 29 && strings.Contains(s.want, "1 day") {
			continue // the rule for Feb 29 is tested in package birthday
		}
		code, body := p.request(t, s.method, s.path, s.body)
		if time.Now().UTC().YearDay() != today.YearDay() {
			continue // midnight passed: "today" moved under the test
		}
		if code != s.code || !strings.Contains(body, s.want) {
			t.Errorf("%s %s = %d %s, want %d with %s", s.method, s.path, code, body, s.code, s.want)
		}
	}

	// A PUT whose body is still on its way.
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"dateOfBirth":"1985-12-31"}`
	half := len(body) / 2
	fmt.Fprintf(conn, "PUT /hello/bob HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", p.addr, len(body), body[:half])
	waitFor(t, "the in-flight request", func() bool { return inFlight(t, p) == 1 })

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/statusz 503", func() bool {
		code, body := p.request(t, "GET", "/statusz", "")
		return code == 503 && strings.Contains(body, "shutting down")
	})
	waitFor(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-p.exited:
		t.Fatalf("birthday-app exited (%v) with a request in flight", err)
	default:
	}
	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight PUT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("in-flight PUT = %d, want 204", resp.StatusCode)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("birthday-app exited with %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("birthday-app did not exit after its last request")
	}
	for _, msg := range []string{"starting birthday-app", "shutdown started: reporting not ready", "shutdown complete", "stopped"} {
		if len(p.logged(msg)) != 1 {
			t.Errorf("the log has %d %q lines, want 1", len(p.logged(msg)), msg)
		}
	}
	var sawBob bool
	for _, l := range p.logged("request") {
		sawBob = sawBob || l["method"] == "PUT" && l["path"] == "/hello/bob" && l["status"] == float64(204) && l["request_id"] != ""
	}
	if !sawBob {
		t.Error("no access log line for the in-flight PUT")
	}

	// The data survived: a new process on the same file finds bob.
	p2 := start(t, bin, "-listen", "127.0.0.1:0", "-db", "sqlite://"+db)
	if code, body := p2.request(t, "GET", "/hello/bob", ""); code != 200 || !strings.Contains(body, "Hello, bob!") {
		t.Errorf("after a restart GET /hello/bob = %d %s, want 200", code, body)
	}
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p2.exited; err != nil {
		t.Errorf("second process exited with %v, want status 0", err)
	}
}

// inFlight reads the in-flight gauge from /metrics, not counting the
// /metrics request itself.
func inFlight(t *testing.T, p *proc) int {
	_, body := p.request(t, "GET", "/metrics", "")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, "birthday_http_requests_in_flight "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("in-flight gauge %q: %v", v, err)
			}
			return n - 1
		}
	}
	t.Fatal("/metrics has no birthday_http_requests_in_flight")
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBinaryUsage checks the exit statuses of -help, bad flags and a
// database that cannot be opened.
func TestBinaryUsage(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		args   []string
		status int
		output string
	}{
		{[]string{"-help"}, 0, "BIRTHDAY_SHUTDOWN_DELAY"},
		{[]string{"-version"}, 0, "commit feedc0de1234 built 2025-05-01T12:00:00Z"},
		{[]string{"-shutdown-delay", "soon"}, 2, "want a duration"},
		{[]string{"-db", "oracle://x"}, 2, "unsupported database"},
		{[]string{"-listen", "127.0.0.1:0", "-db", "sqlite://" + filepath.Join(t.TempDir(), "no", "such", "dir.db")}, 1, "open sqlite"},
	}
	for _, tt := range tests {
		out, err := exec.Command(bin, tt.args...).CombinedOutput()
		status := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if status != tt.status || !strings.Contains(string(out), tt.output) {
			t.Errorf("birthday-app %q exited %d with %q, want %d and %q", tt.args, status, out, tt.status, tt.output)
		}
	}
}
