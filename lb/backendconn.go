package lb

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Backend connections. The balancer talks HTTP/1.1 to each backend over its
// own pool of kept-alive connections, on the serving goroutine: the request
// is written and the response read by the goroutine that serves the client,
// so a request costs no hand-off to a connection's read or write loop.
const (
	// maxIdlePerBackend bounds the idle connections kept to one backend.
	maxIdlePerBackend = 256
	// idleConnTimeout is how long an idle backend connection is kept.
	idleConnTimeout = 90 * time.Second
	// dialTimeout bounds connecting to a backend.
	dialTimeout = 3 * time.Second
	// connBufSize is the size of each backend connection's read and write
	// buffers; a response's header block must fit in the read buffer's
	// multiple that net/http's parser allows (it grows lines as needed).
	connBufSize = 4 << 10
)

// bconn is one connection to a backend.
type bconn struct {
	conn   net.Conn
	raw    syscall.RawConn // nil when conn is not a *net.TCPConn
	br     *bufio.Reader
	bw     *bufio.Writer
	reused bool      // carried a request before the current one
	idleAt time.Time // when it was put back in the pool
	// stop ends the watch of the current request's client (see watch).
	stop func() bool
	// res and body are the current response when readFast read it.
	res  http.Response
	body connBody
}

// connPool keeps one backend's idle connections, most recently used first.
type connPool struct {
	mu     sync.Mutex
	idle   []*bconn
	closed bool // closeIdle was called: connections are no longer kept
}

var dialer = net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}

// dialError is a failed attempt to connect: the backend never saw the
// request.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// get returns an idle connection to addr, or a new one. An idle connection
// that the backend closed while it was idle is dropped when that can be seen
// without waiting; check asks for that look (a syscall) — the caller asks
// when a failure on a stale connection could not be retried.
func (p *connPool) get(ctx context.Context, addr string, check bool, now time.Time) (*bconn, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if now.Sub(c.idleAt) > idleConnTimeout || c.br.Buffered() > 0 || (check && c.peerClosed()) {
			c.conn.Close()
			continue
		}
		c.reused = true
		return c, nil
	}
	return p.dial(ctx, addr)
}

// dial opens a new connection to addr.
func (p *connPool) dial(ctx context.Context, addr string) (*bconn, error) {
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{err: err}
	}
	c := &bconn{conn: nc, br: bufio.NewReaderSize(nc, connBufSize), bw: bufio.NewWriterSize(nc, connBufSize)}
	if tc, ok := nc.(*net.TCPConn); ok {
		c.raw, _ = tc.SyscallConn()
	}
	return c, nil
}

// put returns a connection whose last exchange ended cleanly.
func (p *connPool) put(c *bconn, now time.Time) {
	c.idleAt = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerBackend {
		p.mu.Unlock()
		c.conn.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// closeExpired closes the connections idle for longer than idleConnTimeout.
func (p *connPool) closeExpired(now time.Time) {
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleAt) > idleConnTimeout {
		n++ // the oldest are first
	}
	expired := append([]*bconn(nil), p.idle[:n]...)
	p.idle = append(p.idle[:0], p.idle[n:]...)
	p.mu.Unlock()
	for _, c := range expired {
		c.conn.Close()
	}
}

// closeIdle closes the idle connections; when final, connections returned
// later are closed too (the backend is gone).
func (p *connPool) closeIdle(final bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if final {
		p.closed = true
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// watch aborts c when ctx ends (the client went away), until unwatch, and
// clears c's read deadline. It returns ctx's error if ctx has ended already.
func (c *bconn) watch(ctx context.Context) error {
	c.stop = context.AfterFunc(ctx, c.abort)
	_ = c.conn.SetReadDeadline(time.Time{})
	return ctx.Err()
}

// unwatch ends the watch, and reports whether c was not aborted by it.
func (c *bconn) unwatch() bool {
	if c.stop == nil {
		return true
	}
	ok := c.stop()
	c.stop = nil
	return ok
}

// abort closes c, from any goroutine: its blocked reads and writes fail, and
// it is never reused.
func (c *bconn) abort() { _ = c.conn.Close() }
