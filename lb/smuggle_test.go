package lb_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lb"
)

// smuggleCase is a raw request stream a client sends in one write, and what
// must come of it: refused (no request reaches the backend; the client gets
// a 4xx or a closed connection), or forwarded as exactly the requests in
// forward, each with one well-formed framing.
type smuggleCase struct {
	name string
	raw  string
	// forward lists the requests the backend must see, in order, as
	// "METHOD URI body"; empty means refused.
	forward []string
	// status is the balancer's own answer after the forwarded requests
	// (4xx), or 0 for none: the connection stays open, or is closed. When
	// the balancer refuses a request whose bytes it did not all read, the
	// kernel may reset the connection before the answer arrives: a reset
	// counts as the refusal.
	status int
}

const host = "Host: app.test\r\n"

// longLine is over MaxHeaderBytes even with the 4 KiB net/http allows beyond.
var longLine = strings.Repeat("a", 2*lb.DefaultMaxHeaderBytes)

func manyHeaders(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "X-H%d: v\r\n", i)
	}
	return b.String()
}

var smuggleCases = []smuggleCase{
	{name: "plain GET", raw: "GET /a HTTP/1.1\r\n" + host + "\r\n", forward: []string{"GET /a "}},
	{name: "POST with Content-Length", raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello", forward: []string{"POST /a hello"}},
	{name: "chunked POST", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", forward: []string{"POST /a hello"}},

	// Content-Length and Transfer-Encoding together: two framings, refused
	// (RFC 9112 section 6.3 allows it), so nothing after them is read.
	{name: "CL and TE", raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n",
		status: 400},
	{name: "TE and CL", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		status: 400},
	{name: "two different Content-Lengths", raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", status: 400},
	{name: "Content-Length list", raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5, 6\r\n\r\nhello!", status: 400},
	{name: "same Content-Length twice", raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", forward: []string{"POST /a hello"}},
	{name: "Content-Length with plus", raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nhello", status: 400},
	{name: "negative Content-Length", raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", status: 400},
	{name: "hex Content-Length", raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 0x5\r\n\r\nhello", status: 400},

	// Transfer-Encoding variants.
	{name: "TE chunked, identity", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 501},
	{name: "TE identity, chunked", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 501},
	{name: "TE twice", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 501},
	{name: "TE leading space", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding:  chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", forward: []string{"POST /a hello"}},
	{name: "TE tab", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", forward: []string{"POST /a hello"}},
	{name: "TE xchunked", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 501},
	{name: "TE chunkedx", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked-x\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 501},
	{name: "TE uppercase", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", forward: []string{"POST /a hello"}},
	{name: "TE name with space", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "TE with NUL", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\x00\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 400},
	// HTTP/1.0 ignores Transfer-Encoding: the body is empty, and the
	// connection is closed after the answer, so the chunk bytes (here a
	// whole request) are never read as a next request.
	{name: "TE on HTTP/1.0", raw: "POST /a HTTP/1.0\r\n" + host + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"GET /smuggled HTTP/1.1\r\n" + host + "\r\n", forward: []string{"POST /a "}},
	{name: "HTTP/1.0 keep-alive pipelined", raw: "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n", forward: []string{"GET /a "}},

	// Obsolete line folding is refused (RFC 9112 section 5.2 allows it).
	{name: "obs-fold", raw: "GET /a HTTP/1.1\r\n" + host + "X-Folded: one\r\n two\r\n\r\n", status: 400},
	{name: "obs-fold of TE", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "fold before first header", raw: "GET /a HTTP/1.1\r\n " + host + "\r\n", status: 400},

	// Invalid chunk sizes: the backend never gets a complete request.
	{name: "chunk size negative", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "chunk size overflow", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "chunk size junk", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "chunk size 0x", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "chunk data missing CRLF", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", status: 400},
	{name: "chunk size bare LF", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", status: 400},
	{name: "chunk extension", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\n\r\n", forward: []string{"POST /a hello"}},

	// Control bytes in headers.
	{name: "bare CR in value", raw: "GET /a HTTP/1.1\r\n" + host + "X-A: b\rX-B: c\r\n\r\n", status: 400},
	{name: "bare LF ends a line", raw: "GET /a HTTP/1.1\n" + host + "X-A: b\nX-B: c\r\n\r\n", forward: []string{"GET /a "}},
	{name: "NUL in value", raw: "GET /a HTTP/1.1\r\n" + host + "X-A: b\x00c\r\n\r\n", status: 400},
	{name: "NUL in name", raw: "GET /a HTTP/1.1\r\n" + host + "X-\x00A: b\r\n\r\n", status: 400},
	{name: "CR in name", raw: "GET /a HTTP/1.1\r\n" + host + "X-\rA: b\r\n\r\n", status: 400},
	{name: "space before colon", raw: "GET /a HTTP/1.1\r\n" + host + "X-A : b\r\n\r\n", status: 400},
	{name: "two Hosts", raw: "GET /a HTTP/1.1\r\n" + host + "Host: other.test\r\n\r\n", status: 400},
	{name: "no Host", raw: "GET /a HTTP/1.1\r\n\r\n", status: 400},
	{name: "long header line", raw: "GET /a HTTP/1.1\r\n" + host + "X-Long: " + longLine + "\r\n\r\n", status: 431},
	{name: "many headers", raw: "GET /a HTTP/1.1\r\n" + host + manyHeaders(10000) + "\r\n", status: 431},
	{name: "100 headers", raw: "GET /a HTTP/1.1\r\n" + host + manyHeaders(100) + "\r\n", forward: []string{"GET /a "}},

	// Pipelining: the second request is not part of the first's body.
	{name: "pipelined", raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n" + host + "\r\n",
		forward: []string{"POST /a hello", "GET /b "}},
	{name: "pipelined chunked", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nPOST /b HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhi",
		forward: []string{"POST /a hello", "POST /b hi"}},
	{name: "pipelined after close", raw: "GET /a HTTP/1.1\r\n" + host + "Connection: close\r\n\r\nGET /b HTTP/1.1\r\n" + host + "\r\n", forward: []string{"GET /a "}},
	{name: "absolute URI", raw: "GET http://other.test/a HTTP/1.1\r\n" + host + "\r\n", forward: []string{"GET /a "}},

	// The front server's own parser: the request line.
	{name: "empty line before request", raw: "\r\nGET /a HTTP/1.1\r\n" + host + "\r\n", status: 400},
	{name: "two spaces in request line", raw: "GET  /a HTTP/1.1\r\n" + host + "\r\n", status: 400},
	{name: "bare CR in target", raw: "GET /a\rb HTTP/1.1\r\n" + host + "\r\n", status: 400},
	{name: "HTTP/2.0 request line", raw: "GET /a HTTP/2.0\r\n" + host + "\r\n", status: 505},
	{name: "HTTP/1.2", raw: "GET /a HTTP/1.2\r\n" + host + "\r\n", status: 505},
	{name: "not HTTP", raw: "GET /a HTTPS/1.1\r\n" + host + "\r\n", status: 400},
	{name: "CONNECT", raw: "CONNECT app.test:443 HTTP/1.1\r\n" + host + "\r\n", status: 405},
	{name: "method not a token", raw: "G(T /a HTTP/1.1\r\n" + host + "\r\n", status: 400},
	// Targets that net/http reads differently from their bytes reach the
	// backend as net/http reads them; clean ones as they came.
	{name: "escaped path and query", raw: "GET /a%2Fb/c?x=%20&y HTTP/1.1\r\n" + host + "\r\n", forward: []string{"GET /a%2Fb/c?x=%20&y "}},
	{name: "path byte net/http escapes", raw: "GET /a{b}?q HTTP/1.1\r\n" + host + "\r\n", forward: []string{"GET /a%7Bb%7D?q "}},
	{name: "empty query", raw: "GET /a? HTTP/1.1\r\n" + host + "\r\n", forward: []string{"GET /a? "}},
	{name: "OPTIONS *", raw: "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", forward: []string{"OPTIONS * "}},
	// Header lines.
	{name: "header without colon", raw: "GET /a HTTP/1.1\r\n" + host + "X-A b\r\n\r\n", status: 400},
	{name: "empty header name", raw: "GET /a HTTP/1.1\r\n" + host + ": b\r\n\r\n", status: 400},
	{name: "Host with a space", raw: "GET /a HTTP/1.1\r\nHost: app test\r\n\r\n", status: 400},
	{name: "HTTP/1.0 without Host", raw: "GET /a HTTP/1.0\r\n\r\n", forward: []string{"GET /a "}},
	{name: "300 short headers", raw: "GET /a HTTP/1.1\r\n" + host + manyHeaders(300) + "\r\n", status: 431},
	{name: "Expect other than 100-continue", raw: "POST /a HTTP/1.1\r\n" + host + "Expect: 200-ok\r\nContent-Length: 5\r\n\r\nhello", status: 417},
	// Chunked bodies: trailers are read and dropped, strictly.
	{name: "chunked with trailer", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: v\r\n\r\n", forward: []string{"POST /a hello"}},
	{name: "trailer obs-fold", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: v\r\n w\r\n\r\n", status: 400},
	{name: "trailer bare LF", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: v\n\r\n", status: 400},
	{name: "chunk line too long", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5;" + strings.Repeat("x", 5000) + "\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "CR inside chunk line", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r;x\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "uppercase hex chunk size", raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nA\r\nhellohello\r\n0\r\n\r\n", forward: []string{"POST /a hellohello"}},
	// Keep-alive: many pipelined requests, answered in order.
	{name: "ten pipelined GETs", raw: strings.Repeat("GET /p HTTP/1.1\r\n"+host+"\r\n", 10),
		forward: slices.Repeat([]string{"GET /p "}, 10)},
}

// startSmuggleRig starts a balancer in front of one recorder.
func startSmuggleRig(t testing.TB, cfg lb.Config) (*lb.Balancer, *recorder) {
	t.Helper()
	rec := startRecorder(t)
	cfg.Listen, cfg.Readiness = "127.0.0.1:0", "/statusz"
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = time.Hour
	}
	b, err := lb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.Add("rec", rec.addr)
	if err := waitReady(b, "rec"); err != nil {
		t.Fatal(err)
	}
	return b, rec
}

func TestSmuggling(t *testing.T) {
	b, rec := startSmuggleRig(t, lb.Config{})
	for _, tc := range smuggleCases {
		t.Run(tc.name, func(t *testing.T) {
			want := len(tc.forward)
			if tc.status != 0 {
				want++
			}
			ex := sendRaw(b.Addr(), []byte(tc.raw), want, 100*time.Millisecond, nil)
			got := complete(settle(b, rec))
			if ex.err != nil {
				t.Fatalf("exchange: %v; got %s", ex.err, ex)
			}
			checkOneFraming(t, got)
			var gotReqs []string
			for _, s := range got {
				gotReqs = append(gotReqs, fmt.Sprintf("%s %s %s", s.Method, s.URI, s.Body))
			}
			if fmt.Sprint(gotReqs) != fmt.Sprint(tc.forward) {
				t.Errorf("backend saw %q, want %q (client got %s)", gotReqs, tc.forward, ex)
			}
			if seqs := ex.seenSeqs(); len(seqs) != len(got) {
				t.Errorf("client got %d backend answers (%v), backend saw %d requests", len(seqs), seqs, len(got))
			}
			var own []int
			for _, r := range ex.responses {
				if r.Header.Get("X-Seen") == "" {
					own = append(own, r.StatusCode)
				}
			}
			switch {
			case tc.status == 0 && len(own) > 0:
				t.Errorf("balancer answered %v itself, want only the backend's answers (%s)", own, ex)
			case tc.status != 0 && ex.reset && len(own) == 0:
			case tc.status != 0 && (len(own) != 1 || own[0] != tc.status):
				t.Errorf("balancer's own answers %v, want [%d] (%s)", own, tc.status, ex)
			case tc.status != 0 && !ex.closed:
				t.Errorf("connection left open after refusing a request (%s)", ex)
			}
			if st := b.Backends()[0]; !st.Ready || st.LastError != "" {
				t.Errorf("backend after the request: %+v, want ready with no error (a client's bad request is not the backend's failure)", st)
			}
		})
	}
}

// settle waits until the balancer has nothing in flight and returns what the
// recorder saw, broken-off requests included.
func settle(b *lb.Balancer, rec *recorder) []seen { return settleFor(b, rec, 5*time.Millisecond) }

// settleFor is settle, giving broken-off requests grace to be recorded.
func settleFor(b *lb.Balancer, rec *recorder, grace time.Duration) []seen {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		busy := false
		for _, s := range b.Backends() {
			busy = busy || s.InFlight > 0
		}
		if !busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(grace) // a broken-off request's close reaching the recorder
	return rec.take()
}

// complete drops the requests that were broken off before their end.
func complete(all []seen) []seen {
	var out []seen
	for _, s := range all {
		if !s.Incomplete {
			out = append(out, s)
		}
	}
	return out
}

// checkOneFraming fails for any request the backend saw whose framing was
// not one unambiguous framing.
func checkOneFraming(t testing.TB, got []seen) {
	t.Helper()
	for _, s := range got {
		if s.Violation != "" {
			t.Errorf("backend saw an ambiguous request: %s\n%q", s.Violation, s.Raw)
		}
	}
}

func waitReady(b *lb.Balancer, id string) error {
	deadline := time.Now().Add(5 * time.Second)
	for b.ReadyCount() == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("backend %s not ready", id)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// TestSlowHeaders dribbles a request's headers one line at a time: the
// balancer closes the connection once HeaderTimeout has passed, and the
// backend never sees the request.
func TestSlowHeaders(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b, rec := startSmuggleRig(t, lb.Config{HeaderTimeout: timeout})
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	write := func(s string) error { _, err := c.Write([]byte(s)); return err }
	if err := write("GET /a HTTP/1.1\r\n" + host); err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; werr == nil && time.Since(start) < 5*time.Second; i++ {
		time.Sleep(50 * time.Millisecond)
		werr = write(fmt.Sprintf("X-Slow-%d: v\r\n", i))
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			werr = err
		}
	}
	d := time.Since(start)
	if werr == nil || d < timeout || d > timeout+time.Second {
		t.Errorf("dribbling headers: connection ended after %v with %v, want closed about %v after the first byte", d, werr, timeout)
	}
	if got := settle(b, rec); len(got) != 0 {
		t.Errorf("backend saw %d requests from a slow client, want 0", len(got))
	}
	if lb.DefaultHeaderTimeout <= 0 || lb.DefaultHeaderTimeout > 30*time.Second {
		t.Errorf("DefaultHeaderTimeout = %v, want a bound of at most 30s", lb.DefaultHeaderTimeout)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
