package lb_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lb"
)

// streamBackend is a net/http backend for the streaming cases:
//
//	/sse     one event, then waits for next before each further one (3 in all)
//	/sha256  the hex SHA-256 and length of the request body
//	/ws      a raw Upgrade: websocket handshake, then echoes bytes upper-cased
type streamBackend struct {
	addr string
	next chan struct{}
}

func startStreamBackend(t *testing.T) *streamBackend {
	t.Helper()
	sb := &streamBackend{next: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sb.addr = ln.Addr().String()
	srv := &http.Server{Handler: sb}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sb
}

func (sb *streamBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/statusz":
		io.WriteString(w, "ok")
	case "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 3 {
			if i > 0 {
				select {
				case <-sb.next:
				case <-r.Context().Done():
					return
				case <-time.After(5 * time.Second):
					return // the client never got the event: the test fails on its side
				}
			}
			fmt.Fprintf(w, "data: event %d\n\n", i)
			rc.Flush()
		}
	case "/sha256":
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	case "/ws":
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want Upgrade: websocket", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		buf := make([]byte, 4096)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				if _, werr := conn.Write([]byte(strings.ToUpper(string(buf[:n])))); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	default:
		http.NotFound(w, r)
	}
}

func startStreamRig(t *testing.T) (*lb.Balancer, *streamBackend) {
	t.Helper()
	sb := startStreamBackend(t)
	b := startBalancer(t, lb.Config{CheckInterval: time.Hour})
	b.Add("s", sb.addr)
	if err := waitReady(b, "s"); err != nil {
		t.Fatal(err)
	}
	return b, sb
}

// TestServerSentEvents: each event reaches the client while the backend
// still holds the response open (it sends the next only once the client
// has the previous one).
func TestServerSentEvents(t *testing.T) {
	b, sb := startStreamRig(t)
	res, err := http.Get("http://" + b.Addr() + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	for i := range 3 {
		got := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			br.ReadString('\n') // the blank line ending the event
			got <- line
		}()
		select {
		case line := <-got:
			if want := fmt.Sprintf("data: event %d\n", i); line != want {
				t.Fatalf("event %d = %q, want %q", i, line, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("event %d did not arrive while the backend held the response open", i)
		}
		if i < 2 {
			sb.next <- struct{}{}
		}
	}
}

// TestExpectContinue: a client that waits for 100 Continue before sending
// its body gets it (exactly once), then the answer.
func TestExpectContinue(t *testing.T) {
	b, _ := startStreamRig(t)
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST /sha256 HTTP/1.1\r\n"+host+"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("before the body: %q, %v; want HTTP/1.1 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue followed by %q, want an empty line", blank)
	}
	io.WriteString(c, "hello")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	sum := sha256.Sum256([]byte("hello"))
	if want := "5 " + hex.EncodeToString(sum[:]); res.StatusCode != 200 || string(body) != want {
		t.Errorf("answer after the body: %d %q, want 200 %q", res.StatusCode, body, want)
	}
}

// TestLargeBody streams 64 MiB through the balancer; the backend gets every
// byte.
func TestLargeBody(t *testing.T) {
	b, _ := startStreamRig(t)
	const size = 64 << 20
	h := sha256.New()
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 1<<20)
		for i := range size / len(chunk) {
			for j := range chunk {
				chunk[j] = byte(i + j)
			}
			h.Write(chunk)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	res, err := http.Post("http://"+b.Addr()+"/sha256", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := fmt.Sprintf("%d %s", size, hex.EncodeToString(h.Sum(nil))); res.StatusCode != 200 || string(body) != want {
		t.Errorf("POST 64 MiB = %d %q, want 200 %q", res.StatusCode, body, want)
	}
}

// TestWebSocketUpgrade: a raw Upgrade handshake goes through, then bytes flow
// both ways on the upgraded connection.
func TestWebSocketUpgrade(t *testing.T) {
	b, _ := startStreamRig(t)
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\n"+host+"Connection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("handshake = %d with Upgrade %q, want 101 websocket", res.StatusCode, res.Header.Get("Upgrade"))
	}
	for _, msg := range []string{"ping", "second message"} {
		io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != strings.ToUpper(msg) {
			t.Fatalf("echo of %q = %q, %v; want %q", msg, got, err, strings.ToUpper(msg))
		}
	}
}
