package lb

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// ServeHTTP routes one request to a ready backend. It is the handler Start
// serves; it may also be mounted elsewhere.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		// net/http ignores (and hides) a Transfer-Encoding on HTTP/1.0, so
		// what follows the request on its connection may be its body:
		// never read another request from it.
		w.Header()["Connection"] = connClose
	}
	be := b.pickFor(r)
	if be == nil {
		writeNoReady(w)
		return
	}
	out := outbound{req: r, trust: b.cfg.TrustForwarded}
	out.client, _ = w.(clientWatcher)
	out.scan()
	if out.badUpgrade {
		b.proxyError(w, r, errBadUpgrade)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		out.body = &replayBody{rc: r.Body, record: idempotent(r) && r.ContentLength <= MaxReplayBody}
	}
	var triedBuf [4]*backend
	tried := append(triedBuf[:0], be)
	left := -1 // retries on other backends; set at the first failure
	fresh := false
	for {
		start := time.Now()
		err := be.forward(w, &out, fresh)
		be.observe(&out, err, start)
		be.done()
		if err == nil {
			return
		}
		var stale *staleConnError
		switch {
		case out.body != nil && out.body.err != nil:
			// The client's body broke off or is malformed: the backend is
			// not at fault, and another backend would get the same.
			b.proxyError(w, r, &clientBodyError{err: out.body.err})
			return
		case out.answered:
			// Part of an answer reached the client: all that is left is
			// to break its connection off.
			panic(http.ErrAbortHandler)
		case r.Context().Err() != nil:
			// The client went away: not the backend's fault, nothing to
			// retry.
			b.proxyError(w, r, err)
			return
		case errors.As(err, &stale) && !fresh && retryable(r, out.body, err):
			// A kept-alive connection the backend had closed: the same
			// backend, on a new connection.
			be.pool.closeIdle(false)
			fresh = true
			if be = b.pickAgain(be); be != nil {
				continue
			}
			b.proxyError(w, r, err)
			return
		}
		b.markFailed(be, err)
		if left < 0 {
			left = len(*b.ready.Load())
		}
		if left == 0 || !retryable(r, out.body, err) {
			b.proxyError(w, r, err)
			return
		}
		next := b.pick(tried)
		if next == nil {
			b.proxyError(w, r, err)
			return
		}
		b.log.Debug("lb retry", "method", r.Method, "from", be.id, "to", next.id, "err", err)
		left--
		tried = append(tried, next)
		be, fresh = next, false
	}
}

// pickAgain raises be's in-flight count again for another attempt on it, or
// returns nil when it was removed meanwhile.
func (b *Balancer) pickAgain(be *backend) *backend {
	be.inflight.Add(1)
	if be.removed.Load() {
		be.done()
		return nil
	}
	return be
}

var errBadUpgrade = errors.New("client sent an invalid Upgrade header")

// staleConnError is an attempt that failed, before any response byte, on a
// connection that had carried an earlier request: the backend most likely
// closed it while it was idle.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string { return "reused connection: " + e.err.Error() }
func (e *staleConnError) Unwrap() error { return e.err }

// forward makes one attempt to serve r from be. An error means nothing was
// written to w unless out.answered is set. fresh asks for a new connection.
func (be *backend) forward(w http.ResponseWriter, out *outbound, fresh bool) error {
	r := out.req
	var c *bconn
	var err error
	if fresh {
		c, err = be.pool.dial(r.Context(), be.addr)
	} else {
		// A request that cannot be retried is not sent on an idle
		// connection the backend is seen to have closed.
		c, err = be.pool.get(r.Context(), be.addr, !idempotent(r), time.Now())
	}
	if err != nil {
		return err
	}
	reuse := false
	defer func() {
		if c.unwatch() && reuse {
			be.pool.put(c, time.Now())
		} else {
			c.conn.Close()
		}
	}()

	out.writeHead(c.bw, be.addr)
	var werr error
	var bodyDone chan error // set when the body goes on its own goroutine
	switch {
	case out.body == nil:
		werr = c.bw.Flush()
	case r.ContentLength >= 0 && r.ContentLength <= inlineBodyMax:
		// Small enough for the backend's socket to take whatever it
		// answers: written before the response is read.
		buf := be.lb.bufs.Get()
		werr = writeBody(c, r, out.body, buf)
		be.lb.bufs.Put(buf)
	default:
		// The backend may answer before it has read the body, or while it
		// streams: the body goes on its own goroutine.
		bodyDone = make(chan error, 1)
		go be.lb.writeBodyAsync(bodyDone, c, r, out.body)
	}
	if werr != nil && out.body != nil && out.body.err != nil {
		return werr
	}
	// Even when the request could not be written whole, the backend may
	// have answered (before it closed): the answer is read all the same.
	res, headerIn, err := be.readResponse(w, out, c)
	if err != nil {
		c.abort()
		if bodyDone != nil {
			<-bodyDone
		}
		if werr != nil {
			if c.reused && !out.answered {
				return &staleConnError{err: werr}
			}
			return werr
		}
		return err
	}
	be.served.Add(1)
	out.status = res.StatusCode
	if res.StatusCode == http.StatusSwitchingProtocols {
		if bodyDone != nil {
			werr = <-bodyDone
		}
		if werr != nil {
			return werr
		}
		return be.upgrade(w, out, c, res)
	}
	complete, err := be.copyResponse(w, out, c, res, headerIn)
	if bodyDone != nil {
		select {
		case werr = <-bodyDone:
		default:
			// The response is complete and the backend has not taken the
			// whole body: the connection cannot carry another request.
			c.abort()
			werr = <-bodyDone
			complete = false
		}
	}
	reuse = complete && werr == nil && !res.Close
	return err
}

// writeBodyAsync is writeBody on its own goroutine, sending its result to
// done.
func (b *Balancer) writeBodyAsync(done chan<- error, c *bconn, r *http.Request, body *replayBody) {
	buf := b.bufs.Get()
	defer b.bufs.Put(buf)
	done <- writeBody(c, r, body, buf)
}

// inlineBodyMax is the largest request body written before the response is
// read, on the serving goroutine.
const inlineBodyMax = 64 << 10

// watchAfter is how long a response head is waited for before the client is
// watched.
const watchAfter = 10 * time.Millisecond

// max1xx bounds the informational responses forwarded before the final one
// (net/http's client allows 5).
const max1xx = 5

// readResponse reads be's response head, forwarding the informational
// responses before it to the client. A 100 Continue is dropped: net/http's
// server sent the client its own when the body was first read.
//
// When in the common form, the head is read straight into the client's
// header map (readFast): in is then set.
func (be *backend) readResponse(w http.ResponseWriter, out *outbound, c *bconn) (res *http.Response, in bool, err error) {
	// Most answers come at once; one that takes longer is waited for
	// watching the client, so that a client that goes away ends the
	// exchange with the backend too (a long poll). Watching costs
	// allocations that the quick answers are spared.
	_ = c.conn.SetReadDeadline(time.Now().Add(watchAfter))
	for n1xx := 0; ; n1xx++ {
		if _, err := c.br.Peek(1); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && c.stop == nil {
				if err := c.watch(out.clientContext()); err != nil {
					return nil, false, err
				}
				n1xx--
				continue
			}
			if n1xx == 0 && c.reused {
				return nil, false, &staleConnError{err: err}
			}
			return nil, false, err
		}
		if c.stop == nil {
			_ = c.conn.SetReadDeadline(time.Time{})
		}
		buf, _ := c.br.Peek(c.br.Buffered())
		if head, ok := scanFastHead(buf, out.req.Method); ok {
			return c.readFast(head, out.req, w.Header()), true, nil
		}
		res, err = http.ReadResponse(c.br, out.req)
		if err != nil {
			return nil, false, err
		}
		code := res.StatusCode
		if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			if code == http.StatusSwitchingProtocols && out.upgrade == "" {
				return nil, false, errors.New("backend switched protocols for a request that asked for no upgrade")
			}
			return res, false, nil
		}
		if n1xx == max1xx {
			return nil, false, errors.New("too many informational responses")
		}
		if code == http.StatusContinue || !out.req.ProtoAtLeast(1, 1) {
			continue // an HTTP/1.0 client gets no informational response
		}
		h := w.Header()
		for k, vv := range res.Header {
			h[k] = vv
		}
		w.WriteHeader(code)
		clear(h)
		out.answered = true
	}
}

// copyResponse writes res to the client; headerIn says its header is in
// w's already. complete reports that res's body
// was read to its end; an error is one writing to the client or reading the
// body after the head was written (out.answered is set).
func (be *backend) copyResponse(w http.ResponseWriter, out *outbound, c *bconn, res *http.Response, headerIn bool) (complete bool, err error) {
	h := w.Header()
	if !headerIn {
		conn := connTokens(res.Header["Connection"])
		for k, vv := range res.Header {
			if isHopHeader(k) || conn.has(k) {
				continue
			}
			h[k] = vv
		}
	}
	h[ReplicaHeader] = be.idHeader
	if len(res.Trailer) > 0 {
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(res.StatusCode)
	out.answered = true
	if res.Body == http.NoBody {
		return true, nil
	}
	announced := len(res.Trailer)
	if announced > 0 {
		// Force chunking, so that the trailers can follow the body.
		_ = http.NewResponseController(w).Flush()
	}
	var flusher http.Flusher
	if res.ContentLength < 0 || isEventStream(h) {
		// Streamed: each read goes out at once (SSE, long poll), and the
		// client is watched.
		if c.stop == nil {
			if err := c.watch(out.clientContext()); err != nil {
				return false, err
			}
		}
		flusher, _ = w.(http.Flusher)
		if flusher == nil {
			flusher = responseFlusher{http.NewResponseController(w)}
		}
	}
	buf := be.lb.bufs.Get()
	defer be.lb.bufs.Put(buf)
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false, werr
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return false, rerr
		}
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			h[k] = vv
		}
	} else {
		for k, vv := range res.Trailer {
			h[http.TrailerPrefix+k] = vv
		}
	}
	return true, nil
}

type responseFlusher struct{ rc *http.ResponseController }

func (f responseFlusher) Flush() { _ = f.rc.Flush() }

func isEventStream(h http.Header) bool {
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	base, _, _ := strings.Cut(ct[0], ";")
	return strings.EqualFold(strings.TrimSpace(base), "text/event-stream")
}

// upgrade connects the client to the backend after a 101 response to an
// upgrade request, until either side closes.
func (be *backend) upgrade(w http.ResponseWriter, out *outbound, c *bconn, res *http.Response) error {
	if got := upgradeType(res.Header); !strings.EqualFold(got, out.upgrade) {
		return errors.New("backend switched to protocol " + got + ", the client asked for " + out.upgrade)
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return err
	}
	out.answered = true
	defer client.Close()
	_ = c.conn.SetDeadline(time.Time{})
	res.Header[ReplicaHeader] = be.idHeader
	res.Body = nil
	if err := res.Write(brw); err != nil {
		return nil
	}
	if err := brw.Flush(); err != nil {
		return nil
	}
	done := make(chan struct{}, 2)
	go func() {
		// The client's bytes after its request, then the connection.
		io.Copy(c.conn, brw.Reader)
		if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(client, c.br)
		done <- struct{}{}
	}()
	<-done
	client.Close()
	c.conn.Close()
	<-done
	return nil
}

// retryable reports whether a request whose attempt failed with err may be
// sent again: see the package comment. It rewinds body when it says yes.
func retryable(req *http.Request, body *replayBody, err error) bool {
	var dial *dialError
	if !errors.As(err, &dial) && !idempotent(req) {
		return false
	}
	return body == nil || body.rewind()
}

// idempotent is net/http's rule for requests safe to send twice.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, k1 := req.Header["Idempotency-Key"]
	_, k2 := req.Header["X-Idempotency-Key"]
	return k1 || k2
}

// replayBody wraps an inbound request body so that a failed attempt can be
// retried: it knows whether any byte was read, and when record is set it keeps
// up to MaxReplayBody read bytes to serve again. Attempts never read it
// concurrently: an attempt's body writer has returned before the next
// attempt starts.
type replayBody struct {
	rc       io.ReadCloser
	err      error // the first read error other than io.EOF
	record   bool
	overflow bool
	read     int64  // bytes read from rc
	buf      []byte // recorded bytes
	pos      int    // next byte of buf to serve; len(buf) when streaming
}

func (r *replayBody) Read(p []byte) (int, error) {
	if r.pos < len(r.buf) {
		n := copy(p, r.buf[r.pos:])
		r.pos += n
		return n, nil
	}
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	if n > 0 {
		r.read += int64(n)
		if r.record && !r.overflow {
			if len(r.buf)+n <= MaxReplayBody {
				r.buf = append(r.buf, p[:n]...)
				r.pos = len(r.buf)
			} else {
				r.overflow, r.buf, r.pos = true, nil, 0
			}
		}
	}
	return n, err
}

// rewind prepares the body to be sent again from its start and reports
// whether that is possible.
func (r *replayBody) rewind() bool {
	if r.read == 0 {
		return true
	}
	if r.record && !r.overflow {
		r.pos = 0
		return true
	}
	return false
}

// clientBodyError is a failed attempt whose cause is the client's request
// body: it was malformed (an invalid chunk) or broke off.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

var (
	badGatewayBody  = []byte(`{"error":"bad gateway"}` + "\n")
	badBodyResponse = []byte(`{"error":"bad request body"}` + "\n")
	badRequestBody  = []byte(`{"error":"bad request"}` + "\n")
)

// proxyError answers a request that no backend could take, or whose body
// could not be read from the client (400, and the connection is closed:
// where its body ends is unknown).
func (b *Balancer) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	h := w.Header()
	h["Content-Type"] = jsonType
	var bodyErr *clientBodyError
	switch {
	case errors.As(err, &bodyErr):
		b.log.Debug("lb proxy: bad request body", "method", r.Method, "path", r.URL.Path, "err", err)
		h["Connection"] = connClose
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(badBodyResponse)
		return
	case errors.Is(err, errBadUpgrade):
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(badRequestBody)
		return
	}
	if r.Context().Err() == nil {
		b.log.Warn("lb proxy", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.WriteHeader(http.StatusBadGateway)
	_, _ = w.Write(badGatewayBody)
}

// clientIP is the host part of a request's RemoteAddr.
func clientIP(remote string) (string, bool) {
	host, _, err := net.SplitHostPort(remote)
	return host, err == nil
}
