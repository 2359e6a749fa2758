package lb_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// recorder is a backend that speaks HTTP/1.1 from raw TCP and records exactly
// what the balancer sent it: the header block byte for byte and the body as
// framed. It frames bodies itself from the raw header lines, checking that
// they carry one unambiguous framing, so that it does not share net/http's
// leniencies with the balancer. Readiness checks (GET /statusz) are answered
// and not recorded. Every other request is answered 200 with X-Seen: its
// sequence number and a body describing what was seen.
type recorder struct {
	addr string
	ln   net.Listener

	mu   sync.Mutex
	seen []seen
	open int // connections from the balancer being read
}

// seen is one request as the recorder received it.
type seen struct {
	Seq    int
	Raw    string // request line and header lines, as received
	Method string
	URI    string
	Header http.Header
	Body   []byte
	// Framing is "none", "length" or "chunked".
	Framing string
	// Violation says how the request's framing was not unambiguous;
	// Incomplete that the connection ended before the body did (the
	// request was broken off, never answered).
	Violation  string
	Incomplete bool
}

func startRecorder(t testing.TB) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{addr: ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return r
}

// requests returns what was seen so far, and forgets it.
func (r *recorder) take() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen
	r.seen = nil
	return s
}

func (r *recorder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		s, ok := readSeen(br)
		if s.Method == "" && !ok {
			return
		}
		if s.Method == http.MethodGet && s.URI == "/statusz" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			continue
		}
		r.mu.Lock()
		s.Seq = len(r.seen) + 1
		r.seen = append(r.seen, s)
		r.mu.Unlock()
		if !ok {
			return // never answer a request that was broken off or ambiguous
		}
		sum := sha256.Sum256(s.Body)
		desc := fmt.Sprintf("%s %s %d %s", s.Method, s.URI, len(s.Body), hex.EncodeToString(sum[:8]))
		var resp bytes.Buffer
		fmt.Fprintf(&resp, "HTTP/1.1 200 OK\r\nX-Seen: %d\r\nContent-Length: %d\r\n\r\n", s.Seq, len(desc))
		if s.Method != http.MethodHead {
			resp.WriteString(desc)
		}
		if _, err := c.Write(resp.Bytes()); err != nil {
			return
		}
	}
}

// readSeen reads one request. ok is false when the connection cannot go on:
// it ended, or the request broke off or was ambiguous.
func readSeen(br *bufio.Reader) (s seen, ok bool) {
	var raw strings.Builder
	var lines []string
	for {
		line, err := br.ReadString('\n')
		raw.WriteString(line)
		if err != nil {
			if raw.Len() > 0 {
				s.Raw, s.Incomplete = raw.String(), true
				s.Method = "?"
			}
			return s, false
		}
		if line == "\r\n" {
			break
		}
		lines = append(lines, line)
	}
	s.Raw = raw.String()
	violate := func(f string, a ...any) {
		if s.Violation == "" {
			s.Violation = fmt.Sprintf(f, a...)
		}
	}
	if len(lines) == 0 {
		s.Method = "?"
		violate("no request line")
		return s, false
	}
	for i, l := range lines {
		body := strings.TrimSuffix(l, "\r\n")
		if len(body) == len(l) {
			violate("line %d %q does not end in CRLF", i, l)
		}
		for _, c := range []byte(body) {
			if c < 0x20 && c != '\t' || c == 0x7f {
				violate("line %d %q has control byte %#x", i, l, c)
			}
		}
		lines[i] = body
	}
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 || parts[2] != "HTTP/1.1" {
		violate("request line %q: want METHOD URI HTTP/1.1", lines[0])
	}
	s.Method = parts[0]
	if len(parts) > 1 {
		s.URI = parts[1]
	}
	s.Header = http.Header{}
	for _, l := range lines[1:] {
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			violate("folded or empty header line %q", l)
			continue
		}
		k, v, found := strings.Cut(l, ":")
		if !found || k == "" || strings.ContainsAny(k, " \t") {
			violate("header line %q: want Name: value", l)
			continue
		}
		s.Header[http.CanonicalHeaderKey(k)] = append(s.Header[http.CanonicalHeaderKey(k)], strings.Trim(v, " \t"))
	}
	cl, te := s.Header["Content-Length"], s.Header["Transfer-Encoding"]
	switch {
	case len(cl) > 0 && len(te) > 0:
		violate("both Content-Length %q and Transfer-Encoding %q", cl, te)
	case len(cl) > 1 || len(te) > 1:
		violate("repeated framing headers: Content-Length %q, Transfer-Encoding %q", cl, te)
	case len(te) == 1 && te[0] != "chunked":
		violate("Transfer-Encoding %q, want chunked", te[0])
	}
	if s.Violation != "" {
		return s, false
	}
	switch {
	case len(te) == 1:
		s.Framing = "chunked"
		body, err := io.ReadAll(httputil.NewChunkedReader(br))
		s.Body = body
		if err == nil {
			// The chunked reader stops after the last chunk's CRLF; the
			// (empty) trailer section ends with one more CRLF.
			var end string
			end, err = br.ReadString('\n')
			if err == nil && end != "\r\n" {
				err = fmt.Errorf("trailer %q: want none", end)
			}
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				s.Incomplete = true
			} else {
				violate("chunked body: %v", err)
			}
			return s, false
		}
	case len(cl) == 1:
		s.Framing = "length"
		n, err := strconv.ParseUint(cl[0], 10, 63)
		if err != nil {
			violate("Content-Length %q", cl[0])
			return s, false
		}
		s.Body = make([]byte, n)
		if _, err := io.ReadFull(br, s.Body); err != nil {
			s.Incomplete = true
			return s, false
		}
	default:
		s.Framing = "none"
	}
	return s, true
}

// exchange is what one raw client connection got back from the balancer.
type exchange struct {
	responses []*http.Response // final (non-1xx) responses, bodies read
	bodies    []string
	closed    bool // the balancer closed the connection
	reset     bool // ... with a reset, which may have lost an answer
	err       error
}

// seenSeqs returns the X-Seen values of the responses the recorder gave.
func (e exchange) seenSeqs() []int {
	var out []int
	for _, r := range e.responses {
		if v := r.Header.Get("X-Seen"); v != "" {
			n, _ := strconv.Atoi(v)
			out = append(out, n)
		}
	}
	return out
}

func (e exchange) String() string {
	var b strings.Builder
	for i, r := range e.responses {
		fmt.Fprintf(&b, "[%d %s %q] ", r.StatusCode, r.Header.Get("X-Seen"), e.bodies[i])
	}
	fmt.Fprintf(&b, "closed=%v err=%v", e.closed, e.err)
	return b.String()
}

// sendRaw writes raw to a new connection to addr in one write and reads
// responses until the balancer closes the connection, want responses came
// (then waits idle more for a surprise), or nothing arrives for idle.
// methods[i] is the method of the i-th request, for reading HEAD answers.
func sendRaw(addr string, raw []byte, want int, idle time.Duration, methods []string) exchange {
	var ex exchange
	c, err := net.Dial("tcp", addr)
	if err != nil {
		ex.err = err
		return ex
	}
	defer c.Close()
	if _, err := c.Write(raw); err != nil {
		ex.err = err
		return ex
	}
	br := bufio.NewReader(c)
	deadline := func() {
		d := 5 * time.Second
		if len(ex.responses) >= want {
			d = idle
		}
		c.SetReadDeadline(time.Now().Add(d))
	}
	for {
		deadline()
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, syscall.ECONNRESET) {
				ex.closed, ex.reset = true, true
				return ex
			}
			var ne net.Error
			ex.closed = !(errors.As(err, &ne) && ne.Timeout())
			if !ex.closed && len(ex.responses) < want {
				ex.err = fmt.Errorf("timed out after %d responses", len(ex.responses))
			}
			return ex
		}
		req := &http.Request{Method: http.MethodGet}
		if i := len(ex.responses); i < len(methods) {
			req.Method = methods[i]
		}
		res, err := http.ReadResponse(br, req)
		if errors.Is(err, syscall.ECONNRESET) {
			ex.closed, ex.reset = true, true
			return ex
		}
		if err != nil {
			ex.err = fmt.Errorf("read response: %w", err)
			return ex
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if errors.Is(err, syscall.ECONNRESET) {
			ex.closed, ex.reset = true, true
			return ex
		}
		if err != nil {
			ex.err = fmt.Errorf("read response body: %w", err)
			return ex
		}
		if res.StatusCode >= 100 && res.StatusCode < 200 {
			continue
		}
		ex.responses = append(ex.responses, res)
		ex.bodies = append(ex.bodies, string(body))
		if res.Close {
			deadline()
			_, err := br.Peek(1)
			ex.closed = err != nil
			return ex
		}
	}
}
