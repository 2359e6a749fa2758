package lb_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/lb"
)

// BenchmarkForward sends GETs through the balancer, one keep-alive client
// connection at a time, to a raw backend that answers each with the same
// bytes, so that allocs/op is the balancer's own per-request cost.
//
//	go test -run '^$' -bench Forward -benchmem ./lb/
func BenchmarkForward(b *testing.B) {
	backend := startFixedBackend(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nhello from a replica\n")
	bal := startBenchBalancer(b, backend)
	c, err := net.Dial("tcp", bal.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: app.test\r\nUser-Agent: bench\r\n\r\n")
	br := bufio.NewReader(c)
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := readFixedResponse(br); err != nil {
			b.Fatal(err)
		}
	}
}

func startBenchBalancer(b *testing.B, backend string) *lb.Balancer {
	bal, err := lb.New(lb.Config{Listen: "127.0.0.1:0", Readiness: "/statusz", CheckInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if err := bal.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bal.Close() })
	bal.Add("r", backend)
	if err := waitReady(bal, "r"); err != nil {
		b.Fatal(err)
	}
	return bal
}

// startFixedBackend answers every request on every connection with resp;
// requests must have no body.
func startFixedBackend(tb testing.TB, resp string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if err := skipHead(br); err != nil {
						return
					}
					if _, err := io.WriteString(c, resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// skipHead reads one request or response head up to its empty line.
func skipHead(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
}

// readFixedResponse reads one response with a Content-Length body.
func readFixedResponse(br *bufio.Reader) error {
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if n < 0 {
		return io.ErrUnexpectedEOF
	}
	_, err := br.Discard(n)
	return err
}

// BenchmarkForwardSplit is BenchmarkForward with a canary split of
// 90/5/5 over three tracks, each backend answering the same bytes: the
// balancer's per-request cost with routing by weight and the per-track
// figures.
//
//	go test -run '^$' -bench 'Forward(Split)?$' -benchmem ./lb/
func BenchmarkForwardSplit(b *testing.B) {
	backend := startFixedBackend(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nhello from a replica\n")
	bal := startBenchBalancer(b, backend)
	for _, tr := range []string{"canary", "baseline"} {
		bal.AddTo(tr, tr, startFixedBackend(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nhello from a replica\n"))
		if err := waitReady(bal, tr); err != nil {
			b.Fatal(err)
		}
	}
	if err := bal.SetWeights(map[string]int{lb.DefaultTrack: 90, "canary": 5, "baseline": 5}); err != nil {
		b.Fatal(err)
	}
	c, err := net.Dial("tcp", bal.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: app.test\r\nUser-Agent: bench\r\n\r\n")
	br := bufio.NewReader(c)
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := readFixedResponse(br); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if f := bal.Figures(); f["canary"].Requests == 0 || f[lb.DefaultTrack].Requests == 0 {
		b.Fatalf("figures %v: a track got nothing", f)
	}
}

// BenchmarkSwitch replaces both replicas, under the load of 8 keep-alive
// clients, the way a rollout does: add the new version's replicas, wait
// until they are ready, remove the old ones (draining them) and stop them.
// It reports how long after the switch began (the Add) every answer came
// from the new version — ms-to-new, the latest start of a request an old
// replica answered — and how many requests failed.
//
//	go test -run '^$' -bench Switch -benchtime 20x ./lb/
func BenchmarkSwitch(b *testing.B) {
	bal, err := lb.New(lb.Config{Listen: "127.0.0.1:0", Readiness: "/statusz"})
	if err != nil {
		b.Fatal(err)
	}
	if err := bal.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bal.Close() })
	old := startVersion(b, bal, 0)
	l := loadtest.Start(loadtest.Config{
		Workers: 8, Duration: time.Hour, URL: "http://" + bal.Addr() + "/",
		Key: func(res *http.Response, _ []byte) string { return res.Header.Get(lb.ReplicaHeader) },
	})
	defer l.Stop()
	for l.OK() < 100 {
		time.Sleep(time.Millisecond)
	}
	var total, worst time.Duration
	n := 0
	for b.Loop() {
		n++
		began := time.Now()
		next := startVersion(b, bal, n)
		var wg sync.WaitGroup
		for _, r := range old {
			wg.Go(func() {
				if err := bal.Remove(context.Background(), r.id); err != nil {
					b.Errorf("Remove(%s) = %v", r.id, err)
				}
				r.stop()
			})
		}
		wg.Wait()
		d := lastStart(l, began, old).Sub(began)
		total += d
		worst = max(worst, d)
		old = next
	}
	l.Stop()
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(n), "ms-to-new")
	b.ReportMetric(float64(worst.Microseconds())/1e3, "max-ms-to-new")
	b.ReportMetric(float64(l.Failed()), "failed")
	if l.Failed() > 0 {
		b.Errorf("%d requests failed; first: %v", l.Failed(), l.Errors())
	}
}

// benchReplica is one replica of a version in BenchmarkSwitch.
type benchReplica struct {
	id  string
	srv *http.Server
}

func (r benchReplica) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// startVersion starts version v's two replicas, adds them to bal and waits
// until they are ready.
func startVersion(b *testing.B, bal *lb.Balancer, v int) []benchReplica {
	var rs []benchReplica
	for _, name := range []string{"a", "b"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "hello")
		})}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		r := benchReplica{id: fmt.Sprintf("v%d-%s", v, name), srv: srv}
		bal.Add(r.id, ln.Addr().String())
		rs = append(rs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range rs {
		if err := bal.WaitReady(ctx, r.id); err != nil {
			b.Fatal(err)
		}
	}
	return rs
}

// lastStart is when the last request that one of old answered started,
// at 0.1 ms resolution, and never before since.
func lastStart(l *loadtest.Load, since time.Time, old []benchReplica) time.Time {
	oldServed := func(t time.Time) bool {
		m := l.Served(t)
		for _, r := range old {
			if m[r.id] > 0 {
				return true
			}
		}
		return false
	}
	lo, hi := since, time.Now()
	if !oldServed(lo) {
		return lo
	}
	for hi.Sub(lo) > 100*time.Microsecond {
		mid := lo.Add(hi.Sub(lo) / 2)
		if oldServed(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}
