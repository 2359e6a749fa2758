package server_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/tcpproxy"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/testdb"
	"github.com/ferryhq/ferry/examples/birthday-app/server"
	"github.com/ferryhq/ferry/examples/birthday-app/store/mysql"
	"github.com/ferryhq/ferry/examples/birthday-app/store/postgres"
)

type closingStore interface {
	birthday.Store
	Close() error
}

// TestDatabaseDownAndBack puts a TCP proxy between the server and a real
// database and stops it: the API answers 503 with a safe JSON message and
// /statusz 503; once the proxy is back, the same server recovers.
func TestDatabaseDownAndBack(t *testing.T) {
	engines := []struct {
		name  string
		newDB func(testing.TB) string
		open  func(context.Context, string) (closingStore, error)
	}{
		{"postgres", testdb.Postgres, func(ctx context.Context, u string) (closingStore, error) { return postgres.Open(ctx, u) }},
		{"mysql", testdb.MySQL, func(ctx context.Context, u string) (closingStore, error) { return mysql.Open(ctx, u) }},
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			dbURL := eng.newDB(t)
			u, err := url.Parse(dbURL)
			if err != nil {
				t.Fatal(err)
			}
			proxy := tcpproxy.New(u.Host)
			if err := proxy.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(proxy.Stop)
			u.Host = proxy.Addr()
			st, err := eng.open(t.Context(), u.String())
			if err != nil {
				t.Fatalf("open through the proxy: %v", err)
			}
			t.Cleanup(func() { st.Close() })
			e := newEnvWith(t, st, st, func(c *server.Config) { c.StoreTimeout = 2 * time.Second })

			if r := e.do(t, "PUT", "/hello/alice", `{"dateOfBirth":"1990-05-17"}`); r.code != 204 {
				t.Fatalf("PUT alice = %d %s, want 204", r.code, r.body)
			}

			proxy.Stop()
			for _, req := range []struct{ method, path, body string }{
				{"PUT", "/hello/bob", `{"dateOfBirth":"1985-12-31"}`},
				{"GET", "/hello/alice", ""},
				{"GET", "/statusz", ""},
			} {
				r := e.do(t, req.method, req.path, req.body)
				if r.code != 503 {
					t.Errorf("database down: %s %s = %d %s, want 503", req.method, req.path, r.code, r.body)
				}
				for _, leak := range []string{"127.0.0.1", "dial", "connect", "tcp", "pgx", "mysql", "postgres"} {
					if strings.Contains(strings.ToLower(r.body), leak) {
						t.Errorf("database down: %s %s body %s shows internals (%q)", req.method, req.path, r.body, leak)
					}
				}
				if req.path == "/statusz" {
					jsonField(t, r, "status")
				} else if msg := jsonField(t, r, "error"); !strings.Contains(msg, "unavailable") {
					t.Errorf("database down: %s %s error = %q, want it to say unavailable", req.method, req.path, msg)
				}
			}
			if r := e.do(t, "GET", "/healthz", ""); r.code != 200 {
				t.Errorf("database down: GET /healthz = %d, want 200 (the process is alive)", r.code)
			}
			if r := e.do(t, "GET", "/hello/bob1", ""); r.code != 400 {
				t.Errorf("database down: GET /hello/bob1 = %d, want 400 (validation needs no database)", r.code)
			}

			if err := proxy.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				r := e.do(t, "PUT", "/hello/bob", `{"dateOfBirth":"1985-12-31"}`)
				if r.code == 204 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("database back: PUT bob still %d %s after 15 s", r.code, r.body)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if r := e.do(t, "GET", "/statusz", ""); r.code != 200 {
				t.Errorf("database back: GET /statusz = %d %s, want 200", r.code, r.body)
			}
			for name, want := range map[string]string{
				"alice": "Hello, alice! Your birthday is in 1 day",
				"bob":   "Hello, bob! Your birthday is in 229 days",
			} {
				r := e.do(t, "GET", "/hello/"+name, "")
				if r.code != 200 || jsonField(t, r, "message") != want {
					t.Errorf("database back: GET %s = %d %s, want %q", name, r.code, r.body, want)
				}
			}
			var logged bool
			for _, l := range e.logs.lines(t) {
				logged = logged || l["msg"] == "request failed" && l["level"] == "ERROR" && l["err"] != nil && l["request_id"] != ""
			}
			if !logged {
				t.Error("the database failures were not logged with their cause")
			}
		})
	}
}
