package lb

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
)

// outbound is one inbound request as it is forwarded, across its attempts.
type outbound struct {
	req   *http.Request
	trust bool        // Config.TrustForwarded
	body  *replayBody // nil when the request has no body
	// conn holds the request's Connection header values; the headers they
	// name are not forwarded.
	conn connTokens
	// upgrade is the protocol an upgrade request asks for, or "".
	upgrade    string
	badUpgrade bool
	teTrailers bool // the client accepts trailers (Te: trailers)
	// answered is set once anything of a response reached the client: the
	// request can no longer be retried or answered with an error.
	answered bool
	// status is the final status code of the response being forwarded.
	status int

	// client, when set, is asked to watch the client before the request's
	// context is waited on.
	client clientWatcher
}

// clientContext is the request's context, which ends when the client goes
// away once it is watched: the front server watches only when asked.
func (o *outbound) clientContext() context.Context {
	if o.client != nil {
		o.client.watchClient()
	}
	return o.req.Context()
}

// scan reads what forwarding needs from the request's headers.
func (o *outbound) scan() {
	h := o.req.Header
	o.conn = connTokens(h["Connection"])
	if o.conn.has("Upgrade") {
		if up := h["Upgrade"]; len(up) > 0 {
			o.upgrade = up[0]
			o.badUpgrade = !printableASCII(o.upgrade)
		}
	}
	o.teTrailers = connTokens(h["Te"]).has("trailers")
}

// writeHead writes the request line and headers for the backend at addr into
// bw, without flushing. The inbound Host header is kept. Hop-by-hop headers,
// those named in Connection, and the client's Forwarded and X-Forwarded-*
// headers are left out; X-Forwarded-For and X-Forwarded-Proto are the
// balancer's (with TrustForwarded the client's are kept, X-Forwarded-For with
// the client's address appended). The body's framing is the balancer's own:
// Content-Length when the length is known, chunked otherwise. The front
// server has already refused header names and values with control bytes.
func (o *outbound) writeHead(bw *bufio.Writer, addr string) {
	r := o.req
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(requestTarget(r))
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	if r.Host != "" {
		bw.WriteString(r.Host)
	} else {
		bw.WriteString(addr)
	}
	bw.WriteString("\r\n")
	for k, vv := range r.Header {
		if dropRequestHeader(k) || o.conn.has(k) {
			continue
		}
		for _, v := range vv {
			writeHeaderLine(bw, k, v)
		}
	}
	if o.upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\n")
		writeHeaderLine(bw, "Upgrade", o.upgrade)
	}
	if o.teTrailers {
		bw.WriteString("Te: trailers\r\n")
	}
	if ip, ok := clientIP(r.RemoteAddr); ok {
		bw.WriteString("X-Forwarded-For: ")
		if prior := r.Header["X-Forwarded-For"]; o.trust && len(prior) > 0 {
			for _, p := range prior {
				bw.WriteString(p)
				bw.WriteString(", ")
			}
		}
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	if v := r.Header["X-Forwarded-Proto"]; o.trust && len(v) > 0 {
		for _, p := range v {
			writeHeaderLine(bw, "X-Forwarded-Proto", p)
		}
	} else {
		bw.WriteString("X-Forwarded-Proto: http\r\n")
	}
	if o.trust {
		for _, k := range [...]string{"X-Forwarded-Host", "Forwarded"} {
			for _, v := range r.Header[k] {
				writeHeaderLine(bw, k, v)
			}
		}
	}
	switch {
	case o.body != nil && r.ContentLength >= 0:
		bw.WriteString("Content-Length: ")
		writeUint(bw, uint64(r.ContentLength), 10)
		bw.WriteString("\r\n")
	case o.body != nil:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		// Many servers expect a length for a body-less POST or PUT; net/http's
		// client sends it for every method but GET and HEAD.
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
}

// writeUint writes n in base (10 or 16) without allocating.
func writeUint(bw *bufio.Writer, n uint64, base uint64) {
	var digits [20]byte
	i := len(digits)
	for {
		i--
		digits[i] = "0123456789abcdef"[n%base]
		n /= base
		if n == 0 {
			break
		}
	}
	for _, d := range digits[i:] {
		bw.WriteByte(d)
	}
}

func writeHeaderLine(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// writeBody sends r's body to c after its head, framed as writeHead
// announced, and flushes. A failed read of the client's body (body.err is
// set) aborts c mid-body: the backend never takes a broken body for a whole
// one.
func writeBody(c *bconn, r *http.Request, body *replayBody, buf []byte) error {
	chunked := r.ContentLength < 0
	for {
		n, err := body.Read(buf)
		if n > 0 {
			var werr error
			if chunked {
				writeUint(c.bw, uint64(n), 16)
				c.bw.WriteString("\r\n")
				c.bw.Write(buf[:n])
				c.bw.WriteString("\r\n")
				// Each chunk goes out as it came in: a streamed body keeps
				// streaming.
				werr = c.bw.Flush()
			} else {
				_, werr = c.bw.Write(buf[:n])
			}
			if werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			c.abort()
			return err
		}
	}
	if chunked {
		// A request's trailer fields are not forwarded (RFC 9110 allows
		// dropping them): a backend sees no field after the body.
		c.bw.WriteString("0\r\n\r\n")
	}
	return c.bw.Flush()
}

// dropRequestHeader reports whether a request header (canonical name) is
// never forwarded as the client sent it: hop-by-hop headers, the framing
// the balancer writes itself, and the forwarding headers it sets.
func dropRequestHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Host",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded":
		return true
	}
	return false
}

// isHopHeader reports whether a response header (canonical name) is
// hop-by-hop, so not passed on to the client.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// connTokens are the values of a header that lists comma-separated tokens
// (Connection, Te).
type connTokens []string

// has reports whether token is among them, ignoring case.
func (t connTokens) has(token string) bool {
	for _, v := range t {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

// upgradeType is the protocol a message's Upgrade header names when its
// Connection header asks for an upgrade, or "".
func upgradeType(h http.Header) string {
	if !connTokens(h["Connection"]).has("Upgrade") {
		return ""
	}
	if up := h["Upgrade"]; len(up) > 0 {
		return up[0]
	}
	return ""
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
