package lb_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

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
