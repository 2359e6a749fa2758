package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// get GETs path on addr and returns the status and trimmed body.
func get(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func ids(st ferry.Status) []string {
	var out []string
	for _, r := range st.Replicas {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return out
}

// TestRuntimeThroughNode drives an environment through the node's
// protocol as ferry does, with real runc containers: every call of
// ferry.Runtime, the progress and the logs streamed back, the idempotent
// Apply that adoption relies on, and the state the node keeps.
func TestRuntimeThroughNode(t *testing.T) {
	requireContainers(t)
	im := appImages(t)
	data := t.TempDir()
	runNode(t, data, testLogger(t))
	ctx := t.Context()
	c := NewClient(ClientConfig{DataDir: data, Images: im.src})
	defer c.Close()
	rt, err := c.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !rt.Sandboxed() {
		t.Error("Sandboxed() = false as root with runc, want true")
	}
	var progress []ferry.Progress
	if err := rt.Apply(ctx, spec(im.v1, 2), func(p ferry.Progress) { progress = append(progress, p) }); err != nil {
		t.Fatal(err)
	}
	if len(progress) == 0 || progress[len(progress)-1].Updated != 2 {
		t.Errorf("progress = %+v, want steps ending with 2 updated", progress)
	}
	if code, body := get(t, rt.Addr(), "/version"); code != 200 || body != "v1" {
		t.Errorf("GET /version = %d %q, want 200 v1", code, body)
	}
	st, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready != 2 || st.Digest != im.v1 || st.Replicas[0].Isolation != ferry.IsolationRunc {
		t.Errorf("Status = %+v, want 2 ready runc replicas of v1", st)
	}

	// Opened again (a new ferry), it is the same environment, and the
	// same spec applied again changes nothing.
	again, err := c.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	if again.Addr() != rt.Addr() {
		t.Errorf("reopened at %s, want %s", again.Addr(), rt.Addr())
	}
	if err := again.Apply(ctx, spec(im.v1, 2), nil); err != nil {
		t.Fatal(err)
	}
	st2, _ := again.Status(ctx)
	if !slices.Equal(ids(st2), ids(st)) {
		t.Errorf("replicas after the same Apply = %v, want the very ones %v", ids(st2), ids(st))
	}

	if err := rt.Scale(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if st, _ := rt.Status(ctx); st.Ready != 3 {
		t.Errorf("after Scale(3): %d ready", st.Ready)
	}
	if err := rt.Apply(ctx, spec(im.v2, 2), nil); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, rt.Addr(), "/version"); code != 200 || body != "v2" {
		t.Errorf("GET /version = %d %q, want 200 v2", code, body)
	}

	// Logs: the tail, then followed lines, and nothing but the app's.
	var buf bytes.Buffer
	if err := rt.Logs(ctx, &buf, 10, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "version v2 listening") {
		t.Errorf("Logs = %q, want the app's start line", buf.String())
	}
	fctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- rt.Logs(fctx, pw, 0, true); pw.Close() }()
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 4096)
		var got string
		for !strings.Contains(got, "followed 0") {
			n, err := pr.Read(b)
			if err != nil {
				break
			}
			got += string(b[:n])
		}
		line <- got
	}()
	// A follow shows what is printed once it is subscribed, which the
	// caller cannot see happen: print until a line arrives (the first
	// print alone was missed under the race detector's slowness).
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
follow:
	for {
		get(t, rt.Addr(), "/print?n=1&text=followed")
		select {
		case got := <-line:
			if !strings.Contains(got, "followed 0") {
				t.Errorf("followed logs = %q, want the printed line", got)
			}
			break follow
		case <-deadline:
			t.Error("no followed line within 10s")
			break follow
		case <-tick.C:
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Logs(follow) after cancel = %v, want nil", err)
	}

	// A follow answers at once, before any line: its headers are not held
	// back until the app prints, and one stopped before a line is not an
	// unreachable node.
	hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
	res, err := rt.c.send(hctx, http.MethodGet, rt.path("logs")+"?tail=0&follow=1", nil)
	if err != nil {
		t.Errorf("a follow's response headers: %v, want them before any line", err)
	} else {
		res.Body.Close()
	}
	hcancel()
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if err := rt.Logs(qctx, io.Discard, 0, true); err != nil {
		t.Errorf("Logs(follow) ended before any line = %v, want nil", err)
	}
	qcancel()

	// The state the node keeps: the last applied spec, private.
	f := filepath.Join(stateDir(data), "dev.json")
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
	}
	states, err := loadStates(data)
	if err != nil || len(states) != 1 || states[0].Spec == nil || states[0].Spec.Digest != im.v2 || states[0].Spec.Replicas != 2 {
		t.Errorf("loadStates = %+v, %v; want dev with v2×2", states, err)
	}

	// Released, it is gone, listener and state.
	if err := c.Release(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", rt.Addr(), time.Second); err == nil {
		t.Error("balancer still accepts after Release")
	}
	if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state after Release: %v, want none", err)
	}
	if _, err := rt.Status(ctx); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Status after Release = %v, want not_found", err)
	}
}

// TestProtocolRefuses holds the protocol strict: unknown fields, paths
// and versions, and a body for another environment are refused with the
// code that says so.
func TestProtocolRefuses(t *testing.T) {
	data := t.TempDir()
	runNode(t, data, testLogger(t))
	c := NewClient(ClientConfig{DataDir: data})
	defer c.Close()
	qa := devConfig()
	qa.Env, qa.NoSandbox = "qa", true
	if _, err := c.Open(t.Context(), qa); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown field", "PUT", "/v1/envs/dev", `{"env":"dev","listen":"127.0.0.1:0","replicas":3}`, 400, ferry.EINVALID},
		{"two values", "PUT", "/v1/envs/dev", `{"env":"dev","listen":"127.0.0.1:0"} {}`, 400, ferry.EINVALID},
		{"other env", "PUT", "/v1/envs/dev", `{"env":"prod","listen":"127.0.0.1:0"}`, 400, ferry.EINVALID},
		{"not opened", "POST", "/v1/envs/dev/apply", `{}`, 404, ferry.ENOTFOUND},
		{"other version", "GET", "/v2/health", ``, 404, ferry.ENOTFOUND},
		{"no such call", "POST", "/v1/envs/dev/restart", `{}`, 404, ferry.ENOTFOUND},
		{"logs of no env", "GET", "/v1/envs/nope/logs?tail=1", ``, 404, ferry.ENOTFOUND},
		{"split of no env", "POST", "/v1/envs/dev/split", `{"weight":5}`, 404, ferry.ENOTFOUND},
		{"end split of no env", "DELETE", "/v1/envs/dev/split", ``, 404, ferry.ENOTFOUND},
		{"figures of no env", "GET", "/v1/envs/dev/figures", ``, 404, ferry.ENOTFOUND},
		{"split unknown field", "POST", "/v1/envs/qa/split", `{"weight":5,"percent":5}`, 400, ferry.EINVALID},
		{"split two values", "POST", "/v1/envs/qa/split", `{"weight":5} {"weight":6}`, 400, ferry.EINVALID},
		{"split not JSON", "POST", "/v1/envs/qa/split", `weight=5`, 400, ferry.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, "http://node"+tc.path, strings.NewReader(tc.body))
			res, err := c.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var we WireError
			json.NewDecoder(res.Body).Decode(&we)
			if res.StatusCode != tc.status || we.Code != tc.code {
				t.Errorf("%s %s = %d %q (%s), want %d %q", tc.method, tc.path, res.StatusCode, we.Code, we.Text, tc.status, tc.code)
			}
		})
	}
}

// TestSecondNodeRefused: one node per data directory.
func TestSecondNodeRefused(t *testing.T) {
	data := t.TempDir()
	runNode(t, data, testLogger(t))
	_, err := New(Config{DataDir: data})
	if err == nil || !strings.Contains(err.Error(), "another node (pid ") || !strings.Contains(err.Error(), "--takeover") {
		t.Fatalf("second New = %v, want a refusal naming the running node and --takeover", err)
	}
	if pid, err := LockHolder(data); err != nil || pid != os.Getpid() {
		t.Errorf("LockHolder = %d, %v; want this process, %d", pid, err, os.Getpid())
	}
}

// TestSocketOnlyForFerrysUser: the socket is 0600 in a 0700 directory,
// and a process of another user that reaches a socket anyway (here one in
// an open directory) is refused by its SO_PEERCRED uid.
func TestSocketOnlyForFerrysUser(t *testing.T) {
	data := t.TempDir()
	runNode(t, data, testLogger(t))
	for path, want := range map[string]os.FileMode{nodeDir(data): 0o700, SocketPath(data): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("another user's connection needs root to make")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv is not installed")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	open, err := os.MkdirTemp("", "node-open-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	os.Chmod(open, 0o777)
	sock := filepath.Join(open, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666)
	n := &Node{cfg: Config{Version: "test"}, log: testLogger(t), envs: map[string]*env{}}
	srv := &http.Server{Handler: n.routes()}
	go srv.Serve(peerChecked{ln, n.log})
	defer srv.Close()
	for _, tc := range []struct {
		name string
		argv []string
		ok   bool
	}{
		{"ferry's user", []string{curl, "-sf", "--unix-socket", sock, "http://node/v1/health"}, true},
		{"nobody", []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", curl, "-sf", "--unix-socket", sock, "http://node/v1/health"}, false},
	} {
		out, err := exec.Command(tc.argv[0], tc.argv[1:]...).CombinedOutput()
		if got := err == nil && strings.Contains(string(out), `"pid"`); got != tc.ok {
			t.Errorf("%s: health answered = %v (%v: %s), want %v", tc.name, got, err, out, tc.ok)
		}
	}
}
