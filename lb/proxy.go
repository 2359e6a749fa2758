package lb

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
)

// rewrite points the outbound request at be and sets the forwarding headers.
// The inbound Host header is kept. httputil.ReverseProxy has already removed
// the hop-by-hop headers (and those named in Connection) and the Forwarded
// and X-Forwarded-* headers from the outbound request; with TrustForwarded
// the client's are put back, X-Forwarded-For with the client's address
// appended.
func (be *backend) rewrite(pr *httputil.ProxyRequest) {
	u := pr.Out.URL
	u.Scheme = "http"
	u.Host = be.addr
	in, h := pr.In.Header, pr.Out.Header
	trust := be.lb.cfg.TrustForwarded
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		if prior := in["X-Forwarded-For"]; trust && len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		h["X-Forwarded-For"] = []string{ip}
	}
	h["X-Forwarded-Proto"] = protoHTTP
	if trust {
		for _, k := range []string{"X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
			if v := in[k]; len(v) > 0 {
				h[k] = v
			}
		}
	}
}

// RoundTrip sends the request to be; if the connection fails before a
// response, it retries on other ready backends following the package's retry
// rule. be's in-flight count is held by ServeHTTP.
func (be *backend) RoundTrip(req *http.Request) (*http.Response, error) {
	var body *replayBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &replayBody{rc: req.Body, record: idempotent(req) && req.ContentLength <= MaxReplayBody}
		req.Body = body
	}
	res, err := be.transport.RoundTrip(req)
	if err == nil {
		be.served.Add(1)
		res.Header[ReplicaHeader] = be.idHeader
		return res, nil
	}
	if body != nil && body.err != nil {
		// The client's body broke off or is malformed: the backend is not
		// at fault, and another backend would get the same.
		return nil, &clientBodyError{err: body.err}
	}
	return be.lb.retry(be, req, body, err)
}

// retry handles a failed first attempt on first.
func (b *Balancer) retry(first *backend, req *http.Request, body *replayBody, err error) (*http.Response, error) {
	if req.Context().Err() != nil {
		return nil, err // the client went away; not the backend's fault
	}
	left := len(*b.ready.Load()) // at most one retry per ready backend
	tried := []*backend{first}
	cur := first
	for {
		b.markFailed(cur, err)
		if left == 0 || !retryable(req, body, err) {
			return nil, err
		}
		next := b.pick(tried)
		if next == nil {
			return nil, err
		}
		left--
		tried = append(tried, next)
		b.log.Debug("lb retry", "method", req.Method, "from", cur.id, "to", next.id, "err", err)
		r := req.WithContext(req.Context())
		u := *req.URL
		u.Host = next.addr
		r.URL = &u
		var res *http.Response
		res, err = next.transport.RoundTrip(r)
		if err != nil && body != nil && body.err != nil {
			next.done()
			return nil, &clientBodyError{err: body.err}
		}
		if err == nil {
			next.served.Add(1)
			res.Header[ReplicaHeader] = next.idHeader
			res.Body = trackBody(res.Body, next)
			return res, nil
		}
		next.done()
		if req.Context().Err() != nil {
			return nil, err
		}
		cur = next
	}
}

// retryable reports whether a request whose attempt failed with err may be
// sent again: see the package comment. It rewinds body when it says yes.
func retryable(req *http.Request, body *replayBody, err error) bool {
	if !dialFailed(err) && !idempotent(req) {
		return false
	}
	return body == nil || body.rewind()
}

// dialFailed reports whether err means no connection was made, so the
// backend cannot have seen the request.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
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

// replayBody wraps an outbound request body so that a failed attempt can be
// retried: it knows whether any byte was read, and when record is set it keeps
// up to MaxReplayBody read bytes to serve again. Close does nothing: the
// reverse proxy closes the inbound body itself. The transport has stopped
// reading a body when its RoundTrip returns an error, so attempts never read
// it concurrently.
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

func (r *replayBody) Close() error { return nil }

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

// trackBody makes closing a retried response's body lower be's in-flight
// count (the first attempt's backend is tracked by ServeHTTP). A 101
// response's body must stay writable for the reverse proxy's upgrade path.
func trackBody(rc io.ReadCloser, be *backend) io.ReadCloser {
	if rw, ok := rc.(io.ReadWriteCloser); ok {
		return &trackedRWBody{trackedBody: trackedBody{ReadCloser: rc, be: be}, w: rw}
	}
	return &trackedBody{ReadCloser: rc, be: be}
}

type trackedBody struct {
	io.ReadCloser
	be     *backend
	closed atomic.Bool
}

func (t *trackedBody) Close() error {
	err := t.ReadCloser.Close()
	if t.closed.CompareAndSwap(false, true) {
		t.be.done()
	}
	return err
}

type trackedRWBody struct {
	trackedBody
	w io.Writer
}

func (t *trackedRWBody) Write(p []byte) (int, error) { return t.w.Write(p) }

// clientBodyError is a failed attempt whose cause is the client's request
// body: it was malformed (an invalid chunk) or broke off.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

var (
	badGatewayBody  = []byte(`{"error":"bad gateway"}` + "\n")
	badBodyResponse = []byte(`{"error":"bad request body"}` + "\n")
)

// proxyError answers a request that no backend could take, or whose body
// could not be read from the client (400, and the connection is closed:
// where its body ends is unknown).
func (b *Balancer) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	h := w.Header()
	h["Content-Type"] = jsonType
	var bodyErr *clientBodyError
	if errors.As(err, &bodyErr) {
		b.log.Debug("lb proxy: bad request body", "method", r.Method, "path", r.URL.Path, "err", err)
		h["Connection"] = connClose
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(badBodyResponse)
		return
	}
	if r.Context().Err() == nil {
		b.log.Warn("lb proxy", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.WriteHeader(http.StatusBadGateway)
	_, _ = w.Write(badGatewayBody)
}
