package loadtest_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/loadtest"
)

// server answers GET /ok with its name, echoes POST /echo, answers
// /broken with 503 and /wrong with another body than asked; it counts the
// connections it accepted.
func server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("X-Name", "a")
			io.WriteString(w, "a\n")
		case "/echo":
			io.Copy(w, r.Body)
		case "/wrong":
			io.WriteString(w, "not it")
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestLoad(t *testing.T) {
	srv, _ := server(t)
	for _, tc := range []struct {
		name       string
		cfg        loadtest.Config
		wantOK     int64
		wantFailed int64
		wantErr    string
	}{
		{"get", loadtest.Config{Workers: 3, URL: srv.URL + "/ok", Max: 30}, 30, 0, ""},
		{"post with echo", loadtest.Config{Workers: 2, Max: 10, Request: func(w, i int) loadtest.Request {
			return loadtest.Request{Method: "POST", URL: srv.URL + "/echo", Body: "x", Want: "x"}
		}}, 10, 0, ""},
		{"status", loadtest.Config{URL: srv.URL + "/broken", Max: 4}, 0, 4, "503 Service Unavailable: down"},
		{"body", loadtest.Config{Max: 2, Request: func(w, i int) loadtest.Request {
			return loadtest.Request{URL: srv.URL + "/wrong", Want: "it"}
		}}, 0, 2, `body "not it", want "it"`},
		{"transport", loadtest.Config{URL: "http://127.0.0.1:1/", Max: 12}, 0, 12, "connection refused"},
	} {
		l := loadtest.Start(tc.cfg)
		deadline := time.Now().Add(10 * time.Second)
		for l.OK()+l.Failed() < tc.wantOK+tc.wantFailed && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		l.Stop()
		errs := l.Errors()
		if l.OK() != tc.wantOK || l.Failed() != tc.wantFailed {
			t.Errorf("%s: %d ok, %d failed (%q), want %d, %d", tc.name, l.OK(), l.Failed(), errs, tc.wantOK, tc.wantFailed)
		}
		if tc.wantErr != "" && (len(errs) == 0 || !strings.Contains(errs[0], tc.wantErr)) {
			t.Errorf("%s: Errors() = %q, want the first with %q", tc.name, errs, tc.wantErr)
		}
		if len(errs) > 10 {
			t.Errorf("%s: Errors() kept %d, want 10 at most", tc.name, len(errs))
		}
	}
}

// TestServed: answers are counted by Key among the requests that started
// after a time, each worker keeps its connection, and Stop ends a load
// without bound.
func TestServed(t *testing.T) {
	srv, conns := server(t)
	l := loadtest.Start(loadtest.Config{
		Workers: 2, URL: srv.URL + "/ok", Pause: time.Millisecond,
		Key: func(res *http.Response, body []byte) string {
			return res.Header.Get("X-Name") + strings.TrimSpace(string(body))
		},
	})
	for l.OK() < 20 {
		time.Sleep(time.Millisecond)
	}
	mid := time.Now()
	for len(l.Served(mid)) == 0 {
		time.Sleep(time.Millisecond)
	}
	l.Stop()
	l.Stop()
	all, later := l.Served(time.Time{}), l.Served(mid)
	if all["aa"] != int(l.OK()) || len(all) != 1 {
		t.Errorf("Served(ever) = %v, want all %d under aa", all, l.OK())
	}
	if later["aa"] == 0 || later["aa"] >= all["aa"] {
		t.Errorf("Served(mid) = %v, want some but not all of %v", later, all)
	}
	if first, ok := l.FirstServed("aa"); !ok || first.After(mid) {
		t.Errorf("FirstServed(aa) = %v, %v; want a start before %v", first, ok, mid)
	}
	if _, ok := l.FirstServed("nobody"); ok {
		t.Errorf("FirstServed(nobody) = true, want false")
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections for 2 workers, want 2 (keep-alive)", n)
	}
	n := l.OK()
	time.Sleep(20 * time.Millisecond)
	if l.OK() != n {
		t.Errorf("requests went on after Stop")
	}
}

// TestDuration: a load with a Duration ends by itself.
func TestDuration(t *testing.T) {
	srv, _ := server(t)
	l := loadtest.Start(loadtest.Config{URL: srv.URL + "/ok", Duration: 50 * time.Millisecond})
	defer l.Stop()
	time.Sleep(200 * time.Millisecond)
	n := l.OK()
	time.Sleep(50 * time.Millisecond)
	if n == 0 || l.OK() != n || l.Failed() != 0 {
		t.Errorf("a 50ms load: %d ok, then %d, %d failed; want some ok, then no more, none failed", n, l.OK(), l.Failed())
	}
}
