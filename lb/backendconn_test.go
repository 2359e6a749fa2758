package lb_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lb"
)

// scriptBackend speaks raw HTTP/1.1: it answers readiness checks, and hands
// every other request head to answer with the connection and the number of
// requests that connection carried before (0 for its first).
type scriptBackend struct {
	addr  string
	conns atomic.Int64 // connections that carried a proxied request
	mu    sync.Mutex
	heads []string // request lines of the proxied requests, in order
}

func startScriptBackend(t *testing.T, answer func(c net.Conn, br *bufio.Reader, head string, nth int) bool) *scriptBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	sb := &scriptBackend{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for nth := 0; ; {
					head, err := readHead(br)
					if err != nil {
						return
					}
					if strings.HasPrefix(head, "GET /statusz ") {
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						continue
					}
					if nth == 0 {
						sb.conns.Add(1)
					}
					sb.mu.Lock()
					sb.heads = append(sb.heads, strings.SplitN(head, "\r\n", 2)[0])
					sb.mu.Unlock()
					if !answer(c, br, head, nth) {
						return
					}
					nth++
				}
			}()
		}
	}()
	return sb
}

func (sb *scriptBackend) requests() []string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return append([]string(nil), sb.heads...)
}

// readHead reads a request head and a Content-Length body after it.
func readHead(br *bufio.Reader) (string, error) {
	var b strings.Builder
	n := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		b.WriteString(line)
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			if n, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return "", err
			}
		}
		if line == "\r\n" {
			break
		}
	}
	if _, err := br.Discard(n); err != nil {
		return "", err
	}
	return b.String(), nil
}

func scriptRig(t *testing.T, answer func(c net.Conn, br *bufio.Reader, head string, nth int) bool) (*lb.Balancer, *scriptBackend) {
	t.Helper()
	sb := startScriptBackend(t, answer)
	b := startBalancer(t, lb.Config{CheckInterval: time.Hour})
	b.Add("s", sb.addr)
	if err := waitReady(b, "s"); err != nil {
		t.Fatal(err)
	}
	return b, sb
}

func do(t *testing.T, client *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return res.StatusCode, string(b)
}

// TestBackendConnectionReuse: sequential requests, GETs and POSTs, go over
// one kept-alive backend connection.
func TestBackendConnectionReuse(t *testing.T) {
	b, sb := scriptRig(t, func(c net.Conn, _ *bufio.Reader, _ string, _ int) bool {
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return err == nil
	})
	for i := range 50 {
		method := "GET"
		if i%2 == 1 {
			method = "POST"
		}
		if code, body := do(t, http.DefaultClient, method, "http://"+b.Addr()+"/", "x"); code != 200 || body != "ok" {
			t.Fatalf("request %d = %d %q, want 200 ok", i, code, body)
		}
	}
	if n := sb.conns.Load(); n != 1 {
		t.Errorf("50 sequential requests used %d backend connections, want 1", n)
	}
}

// TestBackendClosesKeptAliveConnection: the backend answers a connection's
// first request, then reads the second and closes without answering. A GET
// is sent again on a new connection; a POST, which the backend may have
// acted on, is answered 502 and not sent again.
func TestBackendClosesKeptAliveConnection(t *testing.T) {
	for _, tc := range []struct {
		method  string
		want    int
		retried bool
	}{
		{"GET", 200, true},
		{"PUT", 200, true},
		{"POST", 502, false},
	} {
		t.Run(tc.method, func(t *testing.T) {
			b, sb := scriptRig(t, func(c net.Conn, _ *bufio.Reader, _ string, nth int) bool {
				if nth > 0 {
					return false // read, never answered: the connection closes
				}
				_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
				return err == nil
			})
			url := "http://" + b.Addr() + "/"
			if code, _ := do(t, http.DefaultClient, "GET", url, ""); code != 200 {
				t.Fatalf("first GET = %d, want 200", code)
			}
			code, body := do(t, http.DefaultClient, tc.method, url, "payload")
			reqs := sb.requests()
			wantReqs := 2
			if tc.retried {
				wantReqs = 3
			}
			if code != tc.want || len(reqs) != wantReqs {
				t.Errorf("%s on a connection the backend closes mid-request = %d %q after the backend saw %q; want %d after %d requests",
					tc.method, code, body, reqs, tc.want, wantReqs)
			}
			if tc.retried && body != "first" {
				t.Errorf("retried %s answered %q, want the new connection's first answer", tc.method, body)
			}
		})
	}
}

// TestBackendClosedIdleConnection: the backend closes a kept-alive
// connection after answering (without saying so). A POST afterwards is not
// lost: it goes on a new connection.
func TestBackendClosedIdleConnection(t *testing.T) {
	b, sb := scriptRig(t, func(c net.Conn, _ *bufio.Reader, _ string, _ int) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	url := "http://" + b.Addr() + "/"
	for i, method := range []string{"GET", "POST", "POST", "GET", "POST"} {
		if i > 0 {
			time.Sleep(20 * time.Millisecond) // the close reaches the balancer
		}
		if code, body := do(t, http.DefaultClient, method, url, "x"); code != 200 || body != "ok" {
			t.Fatalf("request %d (%s) = %d %q, want 200 ok", i, method, code, body)
		}
	}
	if n := len(sb.requests()); n != 5 {
		t.Errorf("backend saw %d requests, want 5", n)
	}
}

// TestResponseFraming: answers framed every way HTTP/1.1 allows reach the
// client whole, and the connection is used again only when its framing
// says where the answer ended.
func TestResponseFraming(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		answer string
		close  bool // the backend closes after answering
		want   string
		reused bool // the next request goes over the same backend connection
	}{
		{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, "hello", true},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", false, "hello", true},
		{"close-delimited", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, until the close", true, "hello, until the close", false},
		{"HTTP/1.0 backend", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", true, "hello", false},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", true, "hello", false},
		{"HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false, "", true},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", false, "", true},
		{"304 with length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, "", true},
		{"empty with length", "POST", "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, sb := scriptRig(t, func(c net.Conn, _ *bufio.Reader, head string, nth int) bool {
				if nth > 0 || strings.HasPrefix(head, "GET /next ") {
					_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
					return err == nil
				}
				io.WriteString(c, tc.answer)
				return !tc.close
			})
			req, _ := http.NewRequest(tc.method, "http://"+b.Addr()+"/", nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || string(body) != tc.want {
				t.Errorf("%s = %q, %v; want %q", tc.method, body, err, tc.want)
			}
			if tc.method == "HEAD" && res.ContentLength != 1000 {
				t.Errorf("HEAD Content-Length = %d, want the backend's 1000", res.ContentLength)
			}
			if code, body := do(t, http.DefaultClient, "GET", "http://"+b.Addr()+"/next", ""); code != 200 || body != "next" {
				t.Fatalf("next GET = %d %q, want 200 next", code, body)
			}
			if got := sb.conns.Load() == 1; got != tc.reused {
				t.Errorf("backend connections for two requests: %d; want reuse %v", sb.conns.Load(), tc.reused)
			}
		})
	}
}

// TestInformationalResponses: a 103 Early Hints reaches the client before
// the final answer; a backend's 100 Continue does not (net/http's server
// answers the client's Expect itself).
func TestInformationalResponses(t *testing.T) {
	b, _ := scriptRig(t, func(c net.Conn, _ *bufio.Reader, _ string, _ int) bool {
		_, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return err == nil
	})
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\n"+host+"\r\n")
	br := bufio.NewReader(c)
	var got []string
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		body, _ := io.ReadAll(res.Body)
		got = append(got, res.Status+" "+res.Header.Get("Link")+" "+string(body))
		if res.StatusCode >= 200 {
			break
		}
	}
	want := []string{"103 Early Hints </style.css>; rel=preload ", "200 OK  ok"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("client got %q, want %q", got, want)
	}
}

// TestResponseTrailers: a chunked answer's trailers reach the client.
func TestResponseTrailers(t *testing.T) {
	b, _ := scriptRig(t, func(c net.Conn, _ *bufio.Reader, _ string, _ int) bool {
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n")
		return err == nil
	})
	res, err := http.Get("http://" + b.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(body) != "hello" || res.Trailer.Get("X-Checksum") != "abc123" {
		t.Errorf("GET = %q, %v with trailers %v; want hello with X-Checksum: abc123", body, err, res.Trailer)
	}
}

// TestClientGoneEndsBackendExchange: a client that goes away while the
// backend holds its request (a long poll) has the balancer close the
// backend connection, and the request no longer counts as in flight.
func TestClientGoneEndsBackendExchange(t *testing.T) {
	closed := make(chan struct{})
	b, _ := scriptRig(t, func(c net.Conn, br *bufio.Reader, _ string, _ int) bool {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.ReadByte(); err == io.EOF {
			close(closed) // the balancer closed its side
		}
		return false
	})
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /poll HTTP/1.1\r\n"+host+"\r\n")
	waitFor(t, "the request in flight", func() bool { st, _ := status(b, "s"); return st.InFlight == 1 })
	time.Sleep(100 * time.Millisecond) // past the balancer's quick-answer wait
	c.Close()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("backend connection still open 3s after the client went away")
	}
	waitFor(t, "in-flight count back to 0", func() bool { st, _ := status(b, "s"); return st.InFlight == 0 })
}

// TestEarlyAnswerToLargeBody: a backend that answers before reading a large
// streamed body (and then closes) has its answer reach the client.
func TestEarlyAnswerToLargeBody(t *testing.T) {
	b, _ := scriptRig(t, func(c net.Conn, _ *bufio.Reader, _ string, _ int) bool {
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n")
		return false
	})
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 64<<10)
		for range 256 { // 16 MiB, more than any socket buffer
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	defer pr.Close()
	req, _ := http.NewRequest("POST", "http://"+b.Addr()+"/upload", pr) // chunked: length unknown
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || string(body) != "too big\n" {
		t.Errorf("POST 16 MiB to a backend answering 413 at once = %d %q, want 413 %q", res.StatusCode, body, "too big\n")
	}
}
