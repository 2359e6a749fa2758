package lb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lb"
)

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  lb.Config
		want string
	}{
		{"no listen", lb.Config{}, "listen address required"},
		{"listen without port", lb.Config{Listen: "127.0.0.1"}, `listen "127.0.0.1"`},
		{"relative readiness", lb.Config{Listen: ":0", Readiness: "statusz"}, "must be a path starting with /"},
		{"negative interval", lb.Config{Listen: ":0", CheckInterval: -time.Second}, "check interval -1s"},
		{"negative drain", lb.Config{Listen: ":0", DrainTimeout: -1}, "drain timeout"},
		{"negative threshold", lb.Config{Listen: ":0", FailThreshold: -1}, "fail threshold -1"},
	} {
		_, err := lb.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New(%+v) = %v, want error containing %q", tc.name, tc.cfg, err, tc.want)
		}
	}
	if _, err := lb.New(lb.Config{Listen: "127.0.0.1:0"}); err != nil {
		t.Errorf("New(minimal config) = %v, want nil", err)
	}
}

func TestNoReadyReplicaIs503(t *testing.T) {
	b := startBalancer(t, lb.Config{})
	never := startReplica(t, "never", func(r *replica) { r.ready.Store(false) })
	b.Add(never.id, never.addr)
	for _, when := range []string{"no backend", "backend not ready"} {
		res, body := get(t, "http://"+b.Addr()+"/")
		if res.StatusCode != http.StatusServiceUnavailable || body != `{"error":"no ready replica"}`+"\n" ||
			res.Header.Get("Retry-After") == "" || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: GET / = %d %q (Retry-After %q, Content-Type %q), want 503 JSON with Retry-After",
				when, res.StatusCode, body, res.Header.Get("Retry-After"), res.Header.Get("Content-Type"))
		}
	}
	if never.hits.Load() != 0 {
		t.Errorf("never-ready replica got %d requests, want 0", never.hits.Load())
	}
}

func TestRoundRobinAndHeaders(t *testing.T) {
	b := startBalancer(t, lb.Config{})
	r1, r2 := startReplica(t, "r1"), startReplica(t, "r2")
	addReady(t, b, r1, r2)
	if got := b.ReadyCount(); got != 2 {
		t.Fatalf("ReadyCount() = %d, want 2", got)
	}
	var order []string
	for range 6 {
		res, body := get(t, "http://"+b.Addr()+"/")
		id := res.Header.Get(lb.ReplicaHeader)
		if body != "hello from "+id {
			t.Fatalf("GET / = %q with %s %q, want the named replica's answer", body, lb.ReplicaHeader, id)
		}
		order = append(order, id)
	}
	for i := 1; i < len(order); i++ {
		if order[i] == order[i-1] {
			t.Fatalf("replicas in order %v, want alternating", order)
		}
	}

	req, _ := http.NewRequest("GET", "http://"+b.Addr()+"/headers", nil)
	req.Host = "app.example"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := "host=app.example xff=127.0.0.1 proto=http"; string(body) != want {
		t.Errorf("backend saw %q, want %q", body, want)
	}
}

func TestNeverReadyGetsNoTraffic(t *testing.T) {
	b := startBalancer(t, lb.Config{CheckInterval: 20 * time.Millisecond})
	good := startReplica(t, "good")
	never := startReplica(t, "never", func(r *replica) { r.ready.Store(false) })
	addReady(t, b, good)
	b.Add(never.id, never.addr)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := b.WaitReady(ctx, never.id)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("WaitReady(never) = %v, want deadline exceeded naming status 503", err)
	}
	for range 50 {
		res, _ := get(t, "http://"+b.Addr()+"/")
		if id := res.Header.Get(lb.ReplicaHeader); res.StatusCode != 200 || id != "good" {
			t.Fatalf("GET / = %d from %q, want 200 from good", res.StatusCode, id)
		}
	}
	if n := never.hits.Load(); n != 0 {
		t.Errorf("never-ready replica got %d requests, want 0", n)
	}
	st, _ := status(b, "never")
	if st.Ready || !strings.Contains(st.LastError, "503") {
		t.Errorf("status(never) = %+v, want not ready with a 503 error", st)
	}
	if got := b.ReadyCount(); got != 1 {
		t.Errorf("ReadyCount() = %d, want 1", got)
	}

	// It becomes ready, and then takes traffic.
	never.ready.Store(true)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.WaitReady(ctx, never.id); err != nil {
		t.Fatalf("WaitReady after becoming ready = %v", err)
	}
	for range 4 {
		get(t, "http://"+b.Addr()+"/")
	}
	if never.hits.Load() == 0 {
		t.Errorf("replica that became ready got no requests")
	}
}

func TestFailedChecksTakeReplicaOut(t *testing.T) {
	b := startBalancer(t, lb.Config{CheckInterval: 10 * time.Millisecond, FailThreshold: 3})
	a, c := startReplica(t, "a"), startReplica(t, "c")
	addReady(t, b, a, c)
	a.ready.Store(false)
	waitFor(t, "a taken out", func() bool { return b.ReadyCount() == 1 })
	st, _ := status(b, "a")
	if st.Ready || st.LastError == "" {
		t.Errorf("status(a) = %+v, want not ready with an error", st)
	}
	hits := a.hits.Load()
	for range 10 {
		get(t, "http://"+b.Addr()+"/")
	}
	if a.hits.Load() != hits {
		t.Errorf("replica failing its checks still got requests")
	}
	a.ready.Store(true)
	waitFor(t, "a back", func() bool { return b.ReadyCount() == 2 })
}

func TestWaitReadyErrors(t *testing.T) {
	b := startBalancer(t, lb.Config{})
	if err := b.WaitReady(context.Background(), "nope"); !errors.Is(err, lb.ErrUnknownBackend) {
		t.Errorf("WaitReady(unknown) = %v, want ErrUnknownBackend", err)
	}
	if err := b.Remove(context.Background(), "nope"); !errors.Is(err, lb.ErrUnknownBackend) {
		t.Errorf("Remove(unknown) = %v, want ErrUnknownBackend", err)
	}
	never := startReplica(t, "never", func(r *replica) { r.ready.Store(false) })
	b.Add(never.id, never.addr)
	done := make(chan error, 1)
	go func() { done <- b.WaitReady(context.Background(), never.id) }()
	time.Sleep(50 * time.Millisecond)
	if err := b.Remove(context.Background(), never.id); err != nil {
		t.Fatalf("Remove(never) = %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, lb.ErrRemoved) {
			t.Errorf("WaitReady(removed) = %v, want ErrRemoved", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitReady did not return after Remove")
	}
	if got := len(b.Backends()); got != 0 {
		t.Errorf("len(Backends()) after Remove = %d, want 0", got)
	}
}

func TestRemoveDrainsInFlight(t *testing.T) {
	b := startBalancer(t, lb.Config{})
	slow := startReplica(t, "slow")
	addReady(t, b, slow)

	got := make(chan string, 1)
	go func() {
		res, err := http.Get("http://" + b.Addr() + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		got <- fmt.Sprintf("%d %s", res.StatusCode, body)
	}()
	waitFor(t, "slow request at the replica", func() bool { return slow.active.Load() == 1 })

	removed := make(chan error, 1)
	go func() { removed <- b.Remove(context.Background(), slow.id) }()
	waitFor(t, "slow taken out of rotation", func() bool { return b.ReadyCount() == 0 })
	if res, _ := get(t, "http://"+b.Addr()+"/"); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("new request while draining = %d, want 503", res.StatusCode)
	}
	st, ok := status(b, slow.id)
	if !ok || !st.Draining || st.InFlight != 1 {
		t.Errorf("status while draining = %+v (found %v), want draining with 1 in flight", st, ok)
	}
	select {
	case err := <-removed:
		t.Fatalf("Remove returned %v with a request in flight", err)
	case <-time.After(150 * time.Millisecond):
	}
	close(slow.release)
	select {
	case err := <-removed:
		if err != nil {
			t.Errorf("Remove = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Remove did not return after the request finished")
	}
	if s := <-got; s != "200 slow done" {
		t.Errorf("slow request = %q, want 200 slow done", s)
	}
	if d := slow.shutdown(t); d > time.Second {
		t.Errorf("replica shutdown after Remove took %v, want prompt (idle connections closed)", d)
	}
}

func TestRemoveGivesUpAfterDrainTimeout(t *testing.T) {
	b := startBalancer(t, lb.Config{DrainTimeout: 150 * time.Millisecond})
	slow := startReplica(t, "slow")
	addReady(t, b, slow)
	defer close(slow.release)
	go http.Get("http://" + b.Addr() + "/slow")
	waitFor(t, "slow request at the replica", func() bool { return slow.active.Load() == 1 })

	start := time.Now()
	err := b.Remove(context.Background(), slow.id)
	if d := time.Since(start); !errors.Is(err, lb.ErrDrainTimeout) || d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("Remove = %v after %v, want ErrDrainTimeout after ~150ms", err, d)
	}
	if _, ok := status(b, slow.id); ok {
		t.Errorf("backend still listed after Remove gave up")
	}

	// ctx bounds the wait as well.
	slow2 := startReplica(t, "slow2")
	addReady(t, b, slow2)
	defer close(slow2.release)
	go http.Get("http://" + b.Addr() + "/slow")
	waitFor(t, "slow2 request at the replica", func() bool { return slow2.active.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Remove(ctx, slow2.id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Remove(ctx 50ms) = %v, want deadline exceeded", err)
	}
}

// TestRetryRule sends one request to a failing backend "a" (first in round
// robin order) with a good backend "b" beside it.
func TestRetryRule(t *testing.T) {
	small := strings.Repeat("x", 1000)
	big := strings.Repeat("y", lb.MaxReplayBody+1)
	for _, tc := range []struct {
		name    string
		failure string // "refuse": a's listener is gone; "reset": a resets after reading the request
		method  string
		body    string
		header  string
		retried bool
	}{
		{"GET refused", "refuse", "GET", "", "", true},
		{"POST refused", "refuse", "POST", small, "", true},
		{"POST big body refused", "refuse", "POST", big, "", true},
		{"GET reset", "reset", "GET", "", "", true},
		{"PUT reset", "reset", "PUT", small, "", true},
		{"DELETE reset", "reset", "DELETE", "", "", true},
		{"POST reset", "reset", "POST", small, "", false},
		{"POST with Idempotency-Key reset", "reset", "POST", small, "Idempotency-Key", true},
		{"PUT body over MaxReplayBody reset", "reset", "PUT", big, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBalancer(t, lb.Config{CheckInterval: time.Hour})
			a := startReplica(t, "a", func(r *replica) {
				r.closeChecks = true
				r.reset = tc.failure == "reset"
			})
			good := startReplica(t, "b")
			addReady(t, b, a, good)
			if tc.failure == "refuse" {
				a.crash()
			}

			req, _ := http.NewRequest(tc.method, "http://"+b.Addr()+"/echo", strings.NewReader(tc.body))
			if tc.header != "" {
				req.Header.Set(tc.header, "k1")
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()

			if tc.failure == "reset" && a.hits.Load() != 1 {
				t.Fatalf("failing replica got %d requests, want 1 (routing assumption broken)", a.hits.Load())
			}
			if tc.retried {
				if res.StatusCode != 200 || string(body) != tc.body || res.Header.Get(lb.ReplicaHeader) != "b" {
					t.Errorf("%s = %d from %q with %d body bytes, want 200 from b echoing %d bytes",
						tc.method, res.StatusCode, res.Header.Get(lb.ReplicaHeader), len(body), len(tc.body))
				}
			} else {
				if res.StatusCode != http.StatusBadGateway || string(body) != `{"error":"bad gateway"}`+"\n" {
					t.Errorf("%s = %d %q, want 502 JSON", tc.method, res.StatusCode, body)
				}
				if n := good.hits.Load(); n != 0 {
					t.Errorf("good replica got %d requests, want 0 (not retried)", n)
				}
			}
			st, _ := status(b, "a")
			if st.LastError == "" {
				t.Errorf("status(a) = %+v, want the connection error recorded", st)
			}
			if tc.failure == "refuse" && st.Ready {
				t.Errorf("status(a) = %+v, want not ready after a refused connection", st)
			}
		})
	}
}

func TestCloseIsGraceful(t *testing.T) {
	b, err := lb.New(lb.Config{Listen: "127.0.0.1:0", Readiness: "/statusz"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	slow := startReplica(t, "slow")
	addReady(t, b, slow)
	got := make(chan int, 1)
	go func() {
		res, err := http.Get("http://" + b.Addr() + "/slow")
		if err != nil {
			got <- 0
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		got <- res.StatusCode
	}()
	waitFor(t, "slow request at the replica", func() bool { return slow.active.Load() == 1 })
	// A client connection that never carries a request must not hold Close
	// up (http.Server.Shutdown alone waits 5 s for it).
	unused, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer unused.Close()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	time.Sleep(50 * time.Millisecond)
	close(slow.release)
	if err := <-closed; err != nil {
		t.Errorf("Close() = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close() took %v with an unused client connection, want well under 5s", d)
	}
	if code := <-got; code != 200 {
		t.Errorf("in-flight request during Close = %d, want 200", code)
	}
	if err := b.Start(); !errors.Is(err, lb.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

func TestBrokenResponseDoesNotLeakInFlight(t *testing.T) {
	b := startBalancer(t, lb.Config{DrainTimeout: 5 * time.Second})
	r := startReplica(t, "r")
	addReady(t, b, r)
	res, err := http.Get("http://" + b.Addr() + "/broken")
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Fatalf("GET /broken succeeded, want the break passed on to the client")
	}
	waitFor(t, "in-flight count back to 0", func() bool {
		st, _ := status(b, "r")
		return st.InFlight == 0
	})
	start := time.Now()
	if err := b.Remove(context.Background(), "r"); err != nil || time.Since(start) > time.Second {
		t.Errorf("Remove after a broken response = %v after %v, want nil at once", err, time.Since(start))
	}
}
