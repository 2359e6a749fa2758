package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The front server: the balancer's own HTTP/1.1 server for its clients.
//
// Each client connection has one goroutine that reads a request head with
// the strict parser in frontreq.go into the connection's reused request,
// header map and value slice (one string allocation for every name and
// value), calls the balancer's ServeHTTP with the connection's reused
// response writer (frontres.go), finishes the response and reads the next
// request. Pipelined requests are served in order, one after the other.
// Nothing runs beside the serving goroutine unless a response is slow or
// streamed: only then does a background read watch for the client going
// away (see startBackgroundRead). Neither HTTP/2 nor h2c is spoken (the
// balancer never did).

// frontServer serves HTTP/1.1 clients with handler.
type frontServer struct {
	handler       http.Handler
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxHeader     int
	log           *slog.Logger

	closing atomic.Bool // shutdown or close began: no new requests are read
	// accepting counts the serve loops: shutdown waits for them to end
	// after closing the listeners, so that every connection accepted
	// before is tracked, and served, before it counts what is left.
	accepting sync.WaitGroup
	mu        sync.Mutex
	lns       []net.Listener
	conns     map[*frontConn]struct{}
}

func newFrontServer(h http.Handler, cfg Config) *frontServer {
	return &frontServer{
		handler:       h,
		headerTimeout: cfg.HeaderTimeout,
		idleTimeout:   IdleTimeout,
		maxHeader:     cfg.MaxHeaderBytes,
		log:           cfg.Logger,
		conns:         make(map[*frontConn]struct{}),
	}
}

// Connection states.
const (
	stateNew    int32 = iota // accepted; no byte of a request read yet
	stateIdle                // between two requests
	stateActive              // reading or serving a request
	stateClosed              // closed by shutdown, or done
)

// errServerClosed is serve's answer once shutdown or close began.
var errServerClosed = errors.New("lb: front server closed")

// serve accepts connections on ln until shutdown or close.
func (s *frontServer) serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return errServerClosed
	}
	s.lns = append(s.lns, ln)
	s.accepting.Add(1)
	s.mu.Unlock()
	defer s.accepting.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return errServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("lb accept", "err", err, "retry in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		// A connection accepted is a client about to send a request,
		// even when shutdown began meanwhile (with a listening socket
		// shared across a node's handover, the kernel gave it to this
		// process): it is served, never closed unanswered.
		c := s.newConn(nc)
		s.track(c)
		go c.serve()
	}
}

func (s *frontServer) track(c *frontConn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *frontServer) untrack(c *frontConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// unusedGrace is how long a connection that has not sent a byte yet is left
// open during shutdown: one just dialled is likely about to carry a request.
// (At 100 ms, a client on a loaded machine that dialled just before the
// close, and had not written its request yet, got EOF: it failed one
// request in 3000 across a node's handover.)
const unusedGrace = time.Second

// shutdown stops accepting, closes idle connections (and those unused for
// unusedGrace) as they become so, and returns once no connection is left,
// or with ctx's error. Hijacked connections are not waited for.
func (s *frontServer) shutdown(ctx context.Context) error {
	s.stopListening()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle(time.Now()) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w with connections left: %s", ctx.Err(), s.states())
		case <-tick.C:
		}
	}
}

// states counts the tracked connections by state, for an error.
func (s *frontServer) states() string {
	names := [...]string{stateNew: "new", stateIdle: "idle", stateActive: "active", stateClosed: "closed"}
	var n [len(names)]int
	s.mu.Lock()
	for c := range s.conns {
		n[c.state.Load()]++
	}
	s.mu.Unlock()
	var parts []string
	for st, k := range n {
		if k > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", k, names[st]))
		}
	}
	return strings.Join(parts, ", ")
}

// close closes the listeners and every connection at once.
func (s *frontServer) close() {
	s.stopListening()
	s.mu.Lock()
	all := make([]*frontConn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		c.state.Store(stateClosed)
		c.nc.Close()
	}
}

// stopListening closes the listeners and waits until every serve loop
// has tracked what it accepted and returned.
func (s *frontServer) stopListening() {
	s.mu.Lock()
	s.closing.Store(true)
	lns := s.lns
	s.lns = nil
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	s.accepting.Wait()
}

// closeIdle closes the connections waiting for a request (those never used
// only after unusedGrace) and returns how many connections are left.
func (s *frontServer) closeIdle(now time.Time) int {
	s.mu.Lock()
	var idle []*frontConn
	for c := range s.conns {
		st := c.state.Load()
		if st == stateIdle || (st == stateNew && now.Sub(c.accepted) >= unusedGrace) {
			if c.state.CompareAndSwap(st, stateClosed) {
				idle = append(idle, c)
			}
		}
	}
	n := len(s.conns)
	s.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
	return n
}

// frontBufSize is the size of a client connection's read and write buffers.
// A request head that does not fit is gathered in frontConn.head.
const frontBufSize = 4 << 10

// frontConn is one client connection and everything its requests reuse.
type frontConn struct {
	s        *frontServer
	nc       net.Conn
	accepted time.Time
	state    atomic.Int32
	ctx      context.Context // ends when the client is seen gone
	cancel   context.CancelFunc
	cr       connReader
	br       *bufio.Reader
	bw       *bufio.Writer

	// The current request, and what it reuses from the last.
	tmpl   *http.Request // holds ctx; each request starts as a copy
	req    http.Request
	url    url.URL
	header http.Header
	values []string
	head   []byte // a head gathered across reads
	body   frontBody
	w      frontWriter

	// The background read (see startBackgroundRead).
	bgDone  chan struct{}
	bgAbort atomic.Bool
}

func (s *frontServer) newConn(nc net.Conn) *frontConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &frontConn{s: s, nc: nc, accepted: time.Now(), ctx: ctx, cancel: cancel, header: make(http.Header)}
	c.cr.nc = nc
	c.br = bufio.NewReaderSize(&c.cr, frontBufSize)
	c.bw = bufio.NewWriterSize(nc, frontBufSize)
	c.tmpl = new(http.Request).WithContext(ctx)
	c.tmpl.RemoteAddr = nc.RemoteAddr().String()
	c.body.c = c
	c.w.c = c
	c.w.h = make(http.Header)
	return c
}

// connReader is what the connection's bufio.Reader reads from: the
// connection, after the byte a background read took, if any.
type connReader struct {
	nc      net.Conn
	hasByte bool
	byteBuf [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasByte && len(p) > 0 {
		p[0] = r.byteBuf[0]
		r.hasByte = false
		return 1, nil
	}
	return r.nc.Read(p)
}

// serve reads and serves the connection's requests until one ends it.
func (c *frontConn) serve() {
	defer c.close()
	for first := true; ; first = false {
		if !c.awaitRequest(first) {
			return
		}
		code, err := c.readRequest(first)
		if err != nil {
			if code != 0 {
				c.refuse(code, err)
			}
			return
		}
		c.w.reset()
		if !c.handle() {
			return
		}
		if !c.finishRequest() {
			return
		}
	}
}

func (c *frontConn) close() {
	c.stopBackgroundRead()
	c.cancel()
	if c.w.hijacked {
		return // untracked at the hijack; the handler owns the connection
	}
	c.state.Store(stateClosed)
	c.nc.Close()
	c.s.untrack(c)
}

// awaitRequest waits for the first byte of the next request: on a new
// connection within the header timeout, on a kept-alive one within the idle
// timeout. It reports false when the connection is to be closed.
func (c *frontConn) awaitRequest(first bool) bool {
	switch {
	case first:
		_ = c.nc.SetReadDeadline(c.accepted.Add(c.s.headerTimeout))
	case c.br.Buffered() == 0:
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.idleTimeout))
		c.state.Store(stateIdle)
		// shutdown marks closing before it looks at the states: one of
		// the two sees the other.
		if c.s.closing.Load() {
			return false
		}
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	if st := c.state.Load(); st != stateActive && !c.state.CompareAndSwap(st, stateActive) {
		return false // closed by shutdown meanwhile
	}
	return true
}

// handle runs the handler for the current request. It reports false when
// the connection must not carry another request: the handler hijacked it or
// aborted (panicked).
func (c *frontConn) handle() (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				c.s.log.Error("lb: panic serving a request", "remote", c.req.RemoteAddr,
					"method", c.req.Method, "panic", p, "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	c.s.handler.ServeHTTP(&c.w, &c.req)
	return !c.w.hijacked
}

// finishRequest completes the response, reads what the handler left of the
// request body, and reports whether the connection carries another request.
func (c *frontConn) finishRequest() bool {
	c.stopBackgroundRead()
	if !c.w.finish() {
		return false // the client is gone
	}
	keep := !c.w.closeAfter && !c.req.Close && c.ctx.Err() == nil
	if keep && c.body.discardRest() {
		clear(c.header)
		clear(c.w.h)
		return true
	}
	if c.body.err != io.EOF {
		// The client may still be sending the body: closing now would
		// reset the connection, and the response with it.
		c.lingerClose()
	}
	return false
}

// lingerDelay is how long a connection closed with request bytes unread
// keeps reading them, so that the kernel does not answer them with a reset
// that destroys the response before the client read it (net/http waits
// 500 ms too).
const lingerDelay = 500 * time.Millisecond

// lingerClose ends the connection's sending side and reads (and drops)
// what the client still sends, for at most lingerDelay.
func (c *frontConn) lingerClose() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerDelay))
	var buf [4 << 10]byte
	for {
		if _, err := c.cr.Read(buf[:]); err != nil {
			return
		}
	}
}

// maxDiscard is the most of an unread request body read (and dropped) to
// keep its connection, as net/http does.
const maxDiscard = 256 << 10

// startBackgroundRead watches the client while a response is awaited or
// streamed: a read that fails (the client closed or reset the connection)
// ends the connection's context. It is started only once the request body
// has been read to its end, and at most once per request; a byte it reads
// (the start of a pipelined request) is kept for the next request.
func (c *frontConn) startBackgroundRead() {
	if c.bgDone != nil || c.w.hijacked || !c.body.done() || c.cr.hasByte || c.br.Buffered() > 0 {
		return
	}
	// Cleared here, not in the goroutine, so that stopBackgroundRead's
	// deadline always comes after it.
	_ = c.nc.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	c.bgDone = done
	go func() {
		defer close(done)
		n, err := c.nc.Read(c.cr.byteBuf[:])
		if n == 1 {
			c.cr.hasByte = true
			return
		}
		if c.bgAbort.Load() && isTimeoutErr(err) {
			return
		}
		c.cancel()
	}()
}

// stopBackgroundRead ends a background read, if one runs, and waits for it.
func (c *frontConn) stopBackgroundRead() {
	if c.bgDone == nil {
		return
	}
	c.bgAbort.Store(true)
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-c.bgDone
	c.bgDone = nil
	c.bgAbort.Store(false)
}

var aLongTimeAgo = time.Unix(1, 0)

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refuse answers a request that could not be read with code, and closes
// the connection: where the request ends is unknown.
func (c *frontConn) refuse(code int, err error) {
	c.s.log.Debug("lb: refused a request", "remote", c.tmpl.RemoteAddr, "status", code, "err", err)
	body := `{"error":"` + jsonSafe(http.StatusText(code)+": "+err.Error()) + `"}` + "\n"
	writeStatusLine(c.bw, code)
	c.bw.WriteString("Content-Type: application/json\r\nConnection: close\r\nContent-Length: ")
	writeUint(c.bw, uint64(len(body)), 10)
	c.bw.WriteString("\r\n\r\n")
	c.bw.WriteString(body)
	if c.bw.Flush() == nil {
		c.lingerClose()
	}
}

// jsonSafe keeps the printable ASCII of s that needs no escaping in a JSON
// string.
func jsonSafe(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= ' ' && c <= '~' && c != '"' && c != '\\' {
			b = append(b, c)
		}
	}
	return string(b)
}
