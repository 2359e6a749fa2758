package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/server"
)

// mapStore keeps users in memory, so that BenchmarkHandler measures the
// HTTP layer alone (middleware, access log, metrics, JSON), not a database.
type mapStore struct {
	mu    sync.RWMutex
	users map[string]birthday.User
}

func (m *mapStore) PutUser(_ context.Context, u birthday.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.Name] = u
	return nil
}

func (m *mapStore) User(_ context.Context, name string) (birthday.User, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u, ok := m.users[name]
	if !ok {
		return birthday.User{}, birthday.Errorf(birthday.ENOTFOUND, "user %s not found", name)
	}
	return u, nil
}

func (m *mapStore) Ping(context.Context) error { return nil }

// BenchmarkHandler is the CPU and the allocations of one GET or PUT in the
// server's handler, with the JSON access log encoded (to io.Discard) and
// the metrics recorded, as in production; the connection handling of
// net/http and the database are not in it (cmd/bench measures those).
func BenchmarkHandler(b *testing.B) {
	st := &mapStore{users: map[string]birthday.User{}}
	srv := server.New(server.Config{
		Service: birthday.NewService(st, func() time.Time { return now }, time.UTC),
		Pinger:  st,
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	h := srv.Handler()
	if err := st.PutUser(b.Context(), birthday.User{Name: "alice", DateOfBirth: birthday.DateOf(time.Date(1990, 5, 17, 0, 0, 0, 0, time.UTC))}); err != nil {
		b.Fatal(err)
	}
	body := strings.NewReader("")
	put := httptest.NewRequest(http.MethodPut, "/hello/alice", body)
	put.Header.Set("Content-Type", "application/json")
	get := httptest.NewRequest(http.MethodGet, "/hello/alice", nil)
	for _, bc := range []struct {
		name string
		req  *http.Request
		body string
		want int
	}{
		{"PUT", put, `{"dateOfBirth":"1990-05-17"}`, http.StatusNoContent},
		{"GET", get, "", http.StatusOK},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &discardWriter{header: http.Header{}}
			for b.Loop() {
				body.Reset(bc.body) // the handler reads bc.req's copy, not bc.req
				clear(w.header)
				h.ServeHTTP(w, bc.req)
				if w.code != bc.want {
					b.Fatalf("%s = %d, want %d", bc.name, w.code, bc.want)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	code   int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
