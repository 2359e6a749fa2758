package lb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/lb"
)

// replica is a real HTTP server standing in for an app replica.
//
//	GET /statusz   200 while ready is set, 503 otherwise
//	/echo          echoes the request body
//	/slow          blocks until release is closed
//	/broken        breaks off after part of the body
//	anything else  "hello from ID", after delay
type replica struct {
	id      string
	addr    string
	srv     *http.Server
	ready   atomic.Bool
	delay   time.Duration
	hits    atomic.Int64 // requests other than /statusz
	active  atomic.Int64 // such requests being handled
	release chan struct{}
	// closeChecks answers readiness checks with Connection: close, so that
	// the balancer keeps no idle connection to it.
	closeChecks bool
	// reset hijacks every request other than /statusz and resets the
	// connection without answering.
	reset bool
}

func startReplica(t *testing.T, id string, opts ...func(*replica)) *replica {
	t.Helper()
	r := &replica{id: id, release: make(chan struct{})}
	r.ready.Store(true)
	for _, o := range opts {
		o(r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(ln)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *replica) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/statusz" {
		if r.closeChecks {
			w.Header().Set("Connection", "close")
		}
		if !r.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
		return
	}
	r.hits.Add(1)
	r.active.Add(1)
	defer r.active.Add(-1)
	if r.reset {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
		return
	}
	switch req.URL.Path {
	case "/echo":
		w.Header().Set("X-Test-Replica", r.id)
		body, err := io.ReadAll(req.Body) // all before answering: net/http discards unread bodies on the first write
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(body)
	case "/broken":
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the connection breaks off mid-body
	case "/slow":
		<-r.release
		io.WriteString(w, "slow done")
	case "/headers":
		fmt.Fprintf(w, "host=%s xff=%s proto=%s", req.Host, req.Header.Get("X-Forwarded-For"), req.Header.Get("X-Forwarded-Proto"))
	default:
		if r.delay > 0 {
			time.Sleep(r.delay)
		}
		io.WriteString(w, "hello from "+r.id)
	}
}

// crash closes the listener and every connection at once.
func (r *replica) crash() { r.srv.Close() }

// shutdown stops the replica gracefully and returns how long that took.
func (r *replica) shutdown(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown %s: %v", r.id, err)
	}
	return time.Since(start)
}

func startBalancer(t *testing.T, cfg lb.Config) *lb.Balancer {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Readiness == "" {
		cfg.Readiness = "/statusz"
	}
	b, err := lb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func addReady(t *testing.T, b *lb.Balancer, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		b.Add(r.id, r.addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range rs {
		if err := b.WaitReady(ctx, r.id); err != nil {
			t.Fatal(err)
		}
	}
}

// startLoad runs workers against url over keep-alive connections until
// finished, max requests were sent or limit passed. Every postEvery-th
// request of a worker is a POST /echo whose body must come back (0:
// never). Served counts the answers by the replica that gave them.
func startLoad(url string, workers int, max int64, limit time.Duration, postEvery int) *loadtest.Load {
	return loadtest.Start(loadtest.Config{
		Workers: workers, Max: max, Duration: limit,
		Request: func(w, i int) loadtest.Request {
			if postEvery > 0 && i%postEvery == postEvery-1 {
				msg := fmt.Sprintf("w%d-%d", w, i)
				return loadtest.Request{Method: http.MethodPost, URL: url + "/echo", Body: msg, Want: msg}
			}
			return loadtest.Request{URL: url + "/"}
		},
		Key: func(res *http.Response, _ []byte) string { return res.Header.Get(lb.ReplicaHeader) },
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func status(b *lb.Balancer, id string) (lb.BackendStatus, bool) {
	for _, s := range b.Backends() {
		if s.ID == id {
			return s, true
		}
	}
	return lb.BackendStatus{}, false
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}
