package verify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// app is a tiny birthday-like API: PUT stores a body under a name, GET
// answers JSON about it, /broken answers 500, /slow is ready after a while.
func app(t *testing.T) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	stored := map[string]string{}
	start := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want JSON", http.StatusUnsupportedMediaType)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		stored[r.PathValue("name")] = string(b)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b, ok := stored[r.PathValue("name")]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message": "Hello, `+r.PathValue("name")+`!", "stored": `+b+`, "days": 3, "tags": ["a", "b"]}`)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		if time.Since(start) < 500*time.Millisecond {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /text", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain words") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestRun(t *testing.T) {
	srv := app(t)
	put := ferry.Check{Method: "PUT", Path: "/hello/ada", Headers: []ferry.Header{{Name: "Content-Type", Value: "application/json"}},
		Body: `{"dateOfBirth": "1990-05-17"}`, Expect: 204}
	get := func(jc ferry.JSONCheck) ferry.Check {
		return ferry.Check{Method: "GET", Path: "/hello/ada", Expect: 200, JSON: &jc, Timeout: 300 * time.Millisecond}
	}
	short := 300 * time.Millisecond
	for _, tc := range []struct {
		name    string
		checks  []ferry.Check
		wantErr string
	}{
		{"round trip", []ferry.Check{put, get(ferry.JSONCheck{Field: "message", Contains: "Hello, ada"})}, ""},
		{"nested field", []ferry.Check{put, get(ferry.JSONCheck{Field: "stored.dateOfBirth", Equals: "1990-05-17"})}, ""},
		{"number rendered as JSON", []ferry.Check{put, get(ferry.JSONCheck{Field: "days", Equals: "3"})}, ""},
		{"array element", []ferry.Check{put, get(ferry.JSONCheck{Field: "tags.1", Equals: "b"})}, ""},
		{"wrong field value", []ferry.Check{put, get(ferry.JSONCheck{Field: "message", Equals: "Hi"})},
			`GET /hello/ada: JSON field message = "Hello, ada!", want "Hi"`},
		{"missing field", []ferry.Check{put, get(ferry.JSONCheck{Field: "stored.nope"})}, "GET /hello/ada: JSON field stored.nope is missing"},
		{"not JSON", []ferry.Check{{Method: "GET", Path: "/text", JSON: &ferry.JSONCheck{Field: "x"}, Timeout: short}}, "GET /text: body is not JSON"},
		{"without the header", []ferry.Check{{Method: "PUT", Path: "/hello/bob", Body: "{}", Expect: 204, Timeout: short}},
			"PUT /hello/bob: status 415, want 204"},
		{"500", []ferry.Check{{Method: "GET", Path: "/broken", Timeout: short}}, "GET /broken: status 500, want 200"},
		{"substring", []ferry.Check{{Method: "GET", Path: "/text", Contains: "plain"}}, ""},
		{"substring missing", []ferry.Check{{Method: "GET", Path: "/text", Contains: "fancy", Timeout: short}}, `GET /text: body does not contain "fancy"`},
		{"retried until ready", []ferry.Check{{Method: "GET", Path: "/slow", Timeout: 5 * time.Second}}, ""},
		{"stops at the first failure", []ferry.Check{{Method: "GET", Path: "/broken", Timeout: short}, put}, "GET /broken: status 500"},
	} {
		err := Run(context.Background(), srv.Client(), srv.URL+"/", tc.checks)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tc.wantErr == "") != (got == "") || !strings.HasPrefix(got, tc.wantErr) {
			t.Errorf("Run(%s) = %q, want %q", tc.name, got, tc.wantErr)
		}
	}
}

func TestRunGivesUpAtTheTimeout(t *testing.T) {
	srv := app(t)
	start := time.Now()
	err := Run(context.Background(), srv.Client(), srv.URL, []ferry.Check{{Method: "GET", Path: "/broken", Timeout: 700 * time.Millisecond}})
	if took := time.Since(start); err == nil || took < 600*time.Millisecond || took > 3*time.Second {
		t.Errorf("Run of a check that always fails = %v after %s, want an error after about 700ms", err, took)
	}
}
