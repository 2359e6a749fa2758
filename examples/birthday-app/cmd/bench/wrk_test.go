package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	for _, tt := range []struct {
		name, out string
		want      result
		err       string
	}{
		{
			name: "done line among wrk's own output",
			out:  "Running 5s test @ http://127.0.0.1:1\n  2 threads and 8 connections\nbench-wrk requests=1000 duration_us=5000000 errors=10 p50_us=400 p99_us=2500\nRequests/sec: 200.00\n",
			want: result{requests: 990, elapsed: 5 * time.Second, errors: 10, p50: 400 * time.Microsecond, p99: 2500 * time.Microsecond},
		},
		{name: "no done line", out: "Running 5s test\n", err: "no bench-wrk line"},
		{name: "a field missing", out: "bench-wrk requests=1 duration_us=2 errors=0 p50_us=3\n", err: "no p99_us"},
		{name: "not a number", out: "bench-wrk requests=x duration_us=2 errors=0 p50_us=3 p99_us=4\n", err: `bad "requests=x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.out)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseWrk() error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseWrk() = %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}

// TestWrkScript runs the generated script in the real wrk against a server
// that checks each request is what the app's routes take: GET or PUT
// /hello/{letters}, PUTs with a dateOfBirth body.
func TestWrkScript(t *testing.T) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		if slices.Contains(strings.Split(os.Getenv("FERRY_TEST_REQUIRE"), ","), "wrk") {
			t.Fatalf("wrk is required (FERRY_TEST_REQUIRE) but not found: %v", err)
		}
		t.Skipf("wrk not found (Debian: apt-get install wrk): %v", err)
	}
	path := regexp.MustCompile(`^/hello/user[a-z]+$`)
	body := regexp.MustCompile(`^\{"dateOfBirth":"(19[5-9][0-9]|200[0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"\}$`)
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ok := path.MatchString(r.URL.Path)
		switch r.Method {
		case http.MethodGet:
			ok = ok && len(b) == 0
		case http.MethodPut:
			ok = ok && body.Match(b) && r.Header.Get("Content-Type") == "application/json"
		default:
			ok = false
		}
		if !ok {
			bad.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	l := wrkLoad{bin: bin, addr: strings.TrimPrefix(srv.URL, "http://"), clients: 2, threads: 1, users: 100, dir: t.TempDir()}
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		r, err := l.run(t.Context(), time.Second, m)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if r.requests == 0 || r.errors != 0 || bad.Load() != 0 {
			t.Errorf("%s: %d requests, %d errors, %d refused by the server; want some, none, none", m, r.requests, r.errors, bad.Load())
		}
	}
}
