package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo"
	"github.com/ferryhq/ferry/examples/birthday-app/server"
	"github.com/ferryhq/ferry/examples/birthday-app/store/sqlite"
)

// today is the pinned date of every test: 2025-05-16, mid-afternoon UTC.
var now = time.Date(2025, 5, 16, 15, 4, 5, 0, time.UTC)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

type env struct {
	srv  *server.Server
	http *httptest.Server
	logs *syncBuffer
}

// newEnv serves a server over a real SQLite store in a temp dir.
func newEnv(t *testing.T, mod ...func(*server.Config)) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "birthday.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newEnvWith(t, st, st, mod...)
}

func newEnvWith(t *testing.T, st birthday.Store, p server.Pinger, mod ...func(*server.Config)) *env {
	t.Helper()
	logs := &syncBuffer{}
	cfg := server.Config{
		Service: birthday.NewService(st, func() time.Time { return now }, time.UTC),
		Pinger:  p,
		Logger:  slog.New(slog.NewJSONHandler(logs, nil)),
		Build:   buildinfo.Info{Commit: "0123abc", BuildTime: "2025-05-01T00:00:00Z", GoVersion: "go1.26"},
	}
	for _, m := range mod {
		m(&cfg)
	}
	srv := server.New(cfg)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{srv: srv, http: hs, logs: logs}
}

type response struct {
	code   int
	header http.Header
	body   string
}

func (e *env) do(t *testing.T, method, path, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// jsonField decodes a one-level JSON object body and returns its field.
func jsonField(t *testing.T, r response, field string) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json (body %q)", ct, r.body)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object of strings: %v", r.body, err)
	}
	return m[field]
}

func TestHello(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		method, path, body string
		code               int
		message            string
	}{
		{"PUT", "/hello/alice", `{"dateOfBirth":"1990-05-17"}`, 204, ""},
		{"GET", "/hello/alice", "", 200, "Hello, alice! Your birthday is in 1 day"},
		{"PUT", "/hello/alice", `{"dateOfBirth":"1990-05-18"}`, 204, ""},
		{"GET", "/hello/alice", "", 200, "Hello, alice! Your birthday is in 2 days"},
		{"PUT", "/hello/Bob", ` { "dateOfBirth" : "2000-05-16" } ` + "\n", 204, ""},
		{"GET", "/hello/Bob", "", 200, "Hello, Bob! Happy birthday!"},
		{"PUT", "/hello/carol", `{"dateOfBirth":"2025-05-15"}`, 204, ""}, // born yesterday
		{"GET", "/hello/carol", "", 200, "Hello, carol! Your birthday is in 364 days"},
	}
	for _, s := range steps {
		r := e.do(t, s.method, s.path, s.body)
		if r.code != s.code {
			t.Fatalf("%s %s %s = %d %s, want %d", s.method, s.path, s.body, r.code, r.body, s.code)
		}
		if s.code == 204 && r.body != "" {
			t.Errorf("%s %s = 204 with body %q, want none", s.method, s.path, r.body)
		}
		if s.message != "" {
			if got := jsonField(t, r, "message"); got != s.message {
				t.Errorf("%s %s: message = %q, want %q", s.method, s.path, got, s.message)
			}
		}
	}
	if r := e.do(t, "HEAD", "/hello/alice", ""); r.code != 200 || r.body != "" {
		t.Errorf("HEAD /hello/alice = %d %q, want 200 without a body", r.code, r.body)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	if r := e.do(t, "PUT", "/hello/alice", `{"dateOfBirth":"1990-05-17"}`); r.code != 204 {
		t.Fatalf("PUT alice = %d %s", r.code, r.body)
	}
	const valid = `{"dateOfBirth":"1990-01-01"}`
	tests := []struct {
		method, path, body string
		code               int
		want               string // in the error message
	}{
		{"PUT", "/hello/alice1", valid, 400, "only the letters"},
		{"PUT", "/hello/al%20ice", valid, 400, "only the letters"},
		{"PUT", "/hello/al.ice", valid, 400, "only the letters"},
		{"PUT", "/hello/al-ice", valid, 400, "only the letters"},
		{"PUT", "/hello/al_ice", valid, 400, "only the letters"},
		{"PUT", "/hello/J%C3%BCrgen", valid, 400, "only the letters"},
		{"PUT", "/hello/" + strings.Repeat("a", 65), valid, 400, "at most 64 letters"},
		{"PUT", "/hello/", valid, 400, "must not be empty"},
		{"GET", "/hello/", "", 400, "must not be empty"},
		{"GET", "/hello/bob1", "", 400, "only the letters"},
		{"GET", "/hello/%F0%9F%8E%82", "", 400, "only the letters"},

		{"PUT", "/hello/newuser", ``, 400, "request body is empty"},
		{"PUT", "/hello/newuser", `{`, 400, "ends too early"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"1990-01-01"`, 400, "ends too early"},
		{"PUT", "/hello/newuser", `{"dateOfBirth" "1990-01-01"}`, 400, "not valid JSON"},
		{"PUT", "/hello/newuser", `dateOfBirth=1990-01-01`, 400, "not valid JSON"},
		{"PUT", "/hello/newuser", `[]`, 400, "must be a JSON object"},
		{"PUT", "/hello/newuser", `"1990-01-01"`, 400, "must be a JSON object"},
		{"PUT", "/hello/newuser", `{}`, 400, `missing field "dateOfBirth"`},
		{"PUT", "/hello/newuser", `{"dateOfBrith":"1990-01-01"}`, 400, `unknown field "dateOfBrith"`},
		{"PUT", "/hello/newuser", `{"dateofbirth":"1990-01-01"}`, 400, `unknown field "dateofbirth"`},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"1990-01-01","admin":true}`, 400, `unknown field "admin"`},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"1990-01-01","dateOfBirth":"1991-01-01"}`, 400, "appears twice"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":19900101}`, 400, "must be a string"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":null}`, 400, "must be a string"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":["1990-01-01"]}`, 400, "must be a string"},
		{"PUT", "/hello/newuser", valid + `{}`, 400, "unexpected data after"},
		{"PUT", "/hello/newuser", valid + ` x`, 400, "unexpected data after"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"01/01/1990"}`, 400, "YYYY-MM-DD"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"1990-1-1"}`, 400, "YYYY-MM-DD"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"1990-01-01T00:00:00Z"}`, 400, "YYYY-MM-DD"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":""}`, 400, "YYYY-MM-DD"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"2001-02-30"}`, 400, "not a real calendar date"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"2001-02-29"}`, 400, "not a real calendar date"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"2025-05-16"}`, 400, "must be before today (2025-05-16)"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"2025-05-17"}`, 400, "must be before today"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"3000-01-01"}`, 400, "must be before today"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"1899-12-31"}`, 400, "must not be before 1900-01-01"},
		{"PUT", "/hello/alice", `{"dateOfBirth":"2001-02-30"}`, 400, "not a real calendar date"},

		{"PUT", "/hello/newuser", valid + strings.Repeat(" ", server.MaxBodyBytes), 413, "larger than 1024 bytes"},
		{"PUT", "/hello/newuser", `{"dateOfBirth":"` + strings.Repeat("1", 4000) + `"}`, 413, "larger than 1024 bytes"},

		{"GET", "/hello/nobody", "", 404, "user nobody not found"},
		{"GET", "/nothing/here", "", 404, "no such path"},
		{"GET", "/hello", "", 400, "must not be empty"}, // redirected to /hello/
		{"POST", "/hello/newuser", valid, 405, "method POST is not allowed"},
		{"DELETE", "/hello/alice", "", 405, "method DELETE is not allowed"},
		{"PATCH", "/hello/alice", valid, 405, "allowed: GET, HEAD, PUT"},
		{"POST", "/statusz", "", 405, "allowed: GET, HEAD"},
		{"PUT", "/version", "", 405, "allowed: GET, HEAD"},
		{"DELETE", "/metrics", "", 405, "allowed: GET, HEAD"},
	}
	for _, tt := range tests {
		r := e.do(t, tt.method, tt.path, tt.body)
		short := tt.body
		if len(short) > 60 {
			short = short[:60] + "…"
		}
		if r.code != tt.code {
			t.Errorf("%s %s %s = %d %s, want %d", tt.method, tt.path, short, r.code, r.body, tt.code)
			continue
		}
		if msg := jsonField(t, r, "error"); !strings.Contains(msg, tt.want) {
			t.Errorf("%s %s %s: error = %q, want it to contain %q", tt.method, tt.path, short, msg, tt.want)
		}
		if tt.code == 405 && r.header.Get("Allow") == "" {
			t.Errorf("%s %s = 405 without an Allow header", tt.method, tt.path)
		}
	}
	// Nothing was stored, and alice kept her date.
	if r := e.do(t, "GET", "/hello/newuser", ""); r.code != 404 {
		t.Errorf("after bad input GET /hello/newuser = %d %s, want 404", r.code, r.body)
	}
	if r := e.do(t, "GET", "/hello/alice", ""); jsonField(t, r, "message") != "Hello, alice! Your birthday is in 1 day" {
		t.Errorf("after bad input GET /hello/alice = %d %s, want her birthday unchanged", r.code, r.body)
	}
}

func TestProbesAndVersion(t *testing.T) {
	e := newEnv(t)
	if r := e.do(t, "GET", "/healthz", ""); r.code != 200 || jsonField(t, r, "status") != "ok" {
		t.Errorf("GET /healthz = %d %s, want 200 ok", r.code, r.body)
	}
	if r := e.do(t, "GET", "/statusz", ""); r.code != 200 || jsonField(t, r, "status") != "ok" {
		t.Errorf("GET /statusz = %d %s, want 200 ok", r.code, r.body)
	}
	r := e.do(t, "GET", "/version", "")
	if jsonField(t, r, "commit") != "0123abc" || jsonField(t, r, "buildTime") != "2025-05-01T00:00:00Z" {
		t.Errorf("GET /version = %d %s, want the build's commit and time", r.code, r.body)
	}
	e.srv.Drain()
	if r := e.do(t, "GET", "/statusz", ""); r.code != 503 || jsonField(t, r, "status") != "shutting down" {
		t.Errorf("draining: GET /statusz = %d %s, want 503 shutting down", r.code, r.body)
	}
	if r := e.do(t, "GET", "/healthz", ""); r.code != 200 {
		t.Errorf("draining: GET /healthz = %d %s, want 200", r.code, r.body)
	}
	if r := e.do(t, "PUT", "/hello/alice", `{"dateOfBirth":"1990-05-17"}`); r.code != 204 {
		t.Errorf("draining: PUT /hello/alice = %d %s, want 204: requests are still served", r.code, r.body)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/hello/alice", `{"dateOfBirth":"1990-05-17"}`)
	e.do(t, "GET", "/hello/alice", "")
	e.do(t, "GET", "/hello/alice", "")
	e.do(t, "GET", "/hello/bob", "")
	e.do(t, "GET", "/hello/bob1", "")
	e.do(t, "GET", "/no/such/path", "")
	r := e.do(t, "GET", "/metrics", "")
	if r.code != 200 {
		t.Fatalf("GET /metrics = %d", r.code)
	}
	for _, want := range []string{
		`birthday_http_requests_total{code="204",method="PUT",route="/hello/{username}"} 1`,
		`birthday_http_requests_total{code="200",method="GET",route="/hello/{username}"} 2`,
		`birthday_http_requests_total{code="404",method="GET",route="/hello/{username}"} 1`,
		`birthday_http_requests_total{code="400",method="GET",route="/hello/{username}"} 1`,
		`birthday_http_requests_total{code="404",method="GET",route="/"} 1`,
		`birthday_http_request_duration_seconds_count{method="GET",route="/hello/{username}"} 4`,
		`birthday_http_request_duration_seconds_bucket{method="PUT",route="/hello/{username}",le="+Inf"} 1`,
		`birthday_build_info{build_time="2025-05-01T00:00:00Z",commit="0123abc",go_version="go1.26"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("GET /metrics lacks %s", want)
		}
	}
}

func TestRequestIDAndAccessLog(t *testing.T) {
	ids := 0
	e := newEnv(t, func(c *server.Config) {
		c.NewRequestID = func() string { ids++; return "generated" + strings.Repeat("x", ids) }
	})
	tests := []struct{ sent, want string }{
		{"abc-123_DEF.ghi:7", "abc-123_DEF.ghi:7"},
		{"", "generatedx"},
		{"has space", "generatedxx"},
		{strings.Repeat("a", 129), "generatedxxx"},
		{"<script>", "generatedxxxx"},
	}
	for _, tt := range tests {
		r := e.do(t, "GET", "/hello/nobody", "", "X-Request-Id", tt.sent)
		if got := r.header.Get("X-Request-Id"); got != tt.want {
			t.Errorf("X-Request-Id %q: response id = %q, want %q", tt.sent, got, tt.want)
		}
	}
	var access []map[string]any
	for _, l := range e.logs.lines(t) {
		if l["msg"] == "request" {
			access = append(access, l)
		}
	}
	if len(access) != len(tests) {
		t.Fatalf("%d access log lines, want %d (one per request)", len(access), len(tests))
	}
	for i, l := range access {
		if l["request_id"] != tests[i].want || l["route"] != "/hello/{username}" || l["status"] != float64(404) ||
			l["method"] != "GET" || l["path"] != "/hello/nobody" || l["level"] != "INFO" {
			t.Errorf("access log line %d = %v, want request_id %s, route, status 404, method, path", i, l, tests[i].want)
		}
		if _, ok := l["duration_ms"].(float64); !ok {
			t.Errorf("access log line %d has no duration_ms: %v", i, l)
		}
	}
}

// panicStore panics on reads, standing in for a bug below the handler.
type panicStore struct{ birthday.Store }

func (panicStore) User(context.Context, string) (birthday.User, error) { panic("boom") }

func TestPanicIsA500(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEnvWith(t, panicStore{st}, st)
	r := e.do(t, "GET", "/hello/alice", "")
	if r.code != 500 || jsonField(t, r, "error") != "internal error" {
		t.Errorf("GET with a panicking store = %d %s, want 500 internal error", r.code, r.body)
	}
	var logged bool
	for _, l := range e.logs.lines(t) {
		logged = logged || l["msg"] == "panic serving request" && l["panic"] == "boom" && strings.Contains(l["stack"].(string), "panicStore")
	}
	if !logged {
		t.Errorf("the panic and its stack were not logged")
	}
	if r := e.do(t, "GET", "/healthz", ""); r.code != 200 {
		t.Errorf("after a panic GET /healthz = %d, want 200", r.code)
	}
}

// TestServeDrains runs Serve on a real listener: when its context ends,
// /statusz turns 503 while the listener stays open for ShutdownDelay, a
// request in flight (its body held open) still completes, and Serve
// returns nil.
func TestServeDrains(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := server.New(server.Config{
		Service:       birthday.NewService(st, func() time.Time { return now }, nil),
		Pinger:        st,
		ShutdownDelay: 300 * time.Millisecond,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"dateOfBirth":"1990-05-17"}`
	half := len(body) / 2
	if _, err := io.WriteString(conn, "PUT /hello/alice HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the server reads the headers
	cancel()

	if code := statusCode(t, base+"/statusz"); code != 503 {
		t.Errorf("during the shutdown delay GET /statusz = %d, want 503", code)
	}
	// Wait for the listener to close: the drain proper.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener stayed open")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("in-flight PUT = %d, want 204", resp.StatusCode)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the last request")
	}
	u, err := st.User(context.Background(), "alice")
	if err != nil || u.DateOfBirth.String() != "1990-05-17" {
		t.Errorf("after the drain User(alice) = %v, %v, want 1990-05-17 stored", u, err)
	}
}

func statusCode(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestProbeAccessLevel: passing probes are logged at debug only (a
// balancer's checks would drown the log at info), anything else at info.
func TestProbeAccessLevel(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	e.do(t, "GET", "/statusz", "", "User-Agent", "ferry-lb-check")
	e.do(t, "GET", "/healthz", "")
	e.do(t, "GET", "/version", "")
	var paths []string
	for _, l := range logs.lines(t) {
		if l["msg"] == "request" {
			paths = append(paths, l["path"].(string))
		}
	}
	if len(paths) != 1 || paths[0] != "/version" {
		t.Errorf("access lines at info for %v, want only /version", paths)
	}
}

// TestAccessLogLevel checks the access line against the logger's level:
// written at info, with the time the request ended and every field, and
// left out when the level is above info.
func TestAccessLogLevel(t *testing.T) {
	for _, tt := range []struct {
		level slog.Level
		lines int
	}{
		{slog.LevelDebug, 1},
		{slog.LevelInfo, 1},
		{slog.LevelWarn, 0},
	} {
		t.Run(tt.level.String(), func(t *testing.T) {
			logs := &syncBuffer{}
			e := newEnv(t, func(c *server.Config) {
				c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: tt.level}))
			})
			before := time.Now()
			e.do(t, "PUT", "/hello/alice", `{"dateOfBirth":"1990-05-17"}`, "User-Agent", "probe/1")
			after := time.Now()
			var access []map[string]any
			for _, l := range logs.lines(t) {
				if l["msg"] == "request" {
					access = append(access, l)
				}
			}
			if len(access) != tt.lines {
				t.Fatalf("at level %s: %d access log lines, want %d: %v", tt.level, len(access), tt.lines, access)
			}
			if tt.lines == 0 {
				return
			}
			l := access[0]
			at, err := time.Parse(time.RFC3339Nano, l["time"].(string))
			if err != nil || at.Before(before) || at.After(after) {
				t.Errorf("access line time = %v (%v), want between %v and %v", l["time"], err, before, after)
			}
			for k, want := range map[string]any{"level": "INFO", "method": "PUT", "path": "/hello/alice",
				"route": "/hello/{username}", "status": float64(204), "bytes": float64(0), "user_agent": "probe/1"} {
				if l[k] != want {
					t.Errorf("access line %s = %v, want %v (line %v)", k, l[k], want, l)
				}
			}
			for _, k := range []string{"request_id", "remote"} {
				if s, _ := l[k].(string); s == "" {
					t.Errorf("access line has no %s: %v", k, l)
				}
			}
		})
	}
}
