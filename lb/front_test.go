package lb_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lb"
)

// TestSlowHeadersOnKeptAliveConnection: after a first request, a second one
// whose headers dribble in is cut off HeaderTimeout after its first byte,
// not after the (much longer) idle timeout.
func TestSlowHeadersOnKeptAliveConnection(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b, rec := startSmuggleRig(t, lb.Config{HeaderTimeout: timeout})
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /first HTTP/1.1\r\n"+host+"\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	time.Sleep(2 * timeout) // idle between requests is allowed
	start := time.Now()
	io.WriteString(c, "GET /second HTTP/1.1\r\n")
	var werr error
	for i := 0; werr == nil && time.Since(start) < 4*time.Second; i++ {
		time.Sleep(50 * time.Millisecond)
		_, werr = io.WriteString(c, "X-Slow: v\r\n")
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := br.ReadByte(); err != nil && !isTimeout(err) {
			werr = err
		}
	}
	if d := time.Since(start); werr == nil || d < timeout || d > timeout+time.Second {
		t.Errorf("dribbling a second request's headers: ended after %v with %v, want closed about %v after its first byte", d, werr, timeout)
	}
	got := settle(b, rec)
	if len(got) != 1 || got[0].URI != "/first" {
		t.Errorf("backend saw %v, want only /first", got)
	}
}

// TestCloseEndsIdleKeptAliveConnections: a client connection kept alive
// after its request does not hold Close up, and is closed by it.
func TestCloseEndsIdleKeptAliveConnections(t *testing.T) {
	b, err := lb.New(lb.Config{Listen: "127.0.0.1:0", Readiness: "/statusz"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, "r")
	addReady(t, b, r)
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	io.WriteString(c, "GET / HTTP/1.1\r\n"+host+"\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close() took %v with an idle kept-alive connection, want prompt", d)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle client connection after Close: read = %v, want EOF", err)
	}
}

// TestResponseFramingToClients: the front server frames each answer for
// its client — HEAD without a body on a connection that stays usable, a
// body of unknown length chunked for HTTP/1.1 and delimited by the close
// for HTTP/1.0.
func TestResponseFramingToClients(t *testing.T) {
	b, _ := scriptRig(t, func(c net.Conn, _ *bufio.Reader, head string, _ int) bool {
		switch {
		case strings.HasPrefix(head, "HEAD"):
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
			return true
		case strings.HasPrefix(head, "GET /stream"):
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed body")
			return false // delimited by the backend's close
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	exchange := func(reqs string, methods ...string) ([]*http.Response, []string, bool) {
		t.Helper()
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, reqs)
		br := bufio.NewReader(c)
		var ress []*http.Response
		var bodies []string
		for _, m := range methods {
			res, err := http.ReadResponse(br, &http.Request{Method: m})
			if err != nil {
				t.Fatalf("response %d: %v", len(ress), err)
			}
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("response %d body: %v", len(ress), err)
			}
			ress, bodies = append(ress, res), append(bodies, string(body))
		}
		_, err = br.ReadByte()
		return ress, bodies, errors.Is(err, io.EOF)
	}

	ress, bodies, closed := exchange("HEAD /h HTTP/1.1\r\n"+host+"\r\nGET /g HTTP/1.1\r\n"+host+"Connection: close\r\n\r\n", "HEAD", "GET")
	if ress[0].ContentLength != 11 || bodies[0] != "" || bodies[1] != "ok" || !closed {
		t.Errorf("HEAD then GET on one connection: lengths %d, bodies %q, closed %v; want 11 with no body, then ok, then closed",
			ress[0].ContentLength, bodies, closed)
	}
	ress, bodies, closed = exchange("GET /stream HTTP/1.1\r\n"+host+"Connection: close\r\n\r\n", "GET")
	if te := ress[0].TransferEncoding; len(te) != 1 || te[0] != "chunked" || bodies[0] != "streamed body" || !closed {
		t.Errorf("HTTP/1.1 body of unknown length: framing %v, body %q, closed %v; want chunked, the body, closed", te, bodies[0], closed)
	}
	ress, bodies, closed = exchange("GET /stream HTTP/1.0\r\n\r\n", "GET")
	if ress[0].ContentLength != -1 || len(ress[0].TransferEncoding) != 0 || bodies[0] != "streamed body" || !closed {
		t.Errorf("HTTP/1.0 body of unknown length: length %d, framing %v, body %q, closed %v; want delimited by the close",
			ress[0].ContentLength, ress[0].TransferEncoding, bodies[0], closed)
	}
}

// TestServeHTTPUnderNetHTTP: the balancer is still an http.Handler that can
// be mounted on net/http's server.
func TestServeHTTPUnderNetHTTP(t *testing.T) {
	b := startBalancer(t, lb.Config{})
	r := startReplica(t, "r")
	addReady(t, b, r)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: b}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	code, body := do(t, http.DefaultClient, "POST", "http://"+ln.Addr().String()+"/echo", "through net/http")
	if code != 200 || body != "through net/http" {
		t.Errorf("POST /echo through net/http's server = %d %q, want 200 echoed", code, body)
	}
}
