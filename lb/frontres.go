package lb

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// frontWriter is the front server's http.ResponseWriter (and http.Flusher,
// http.Hijacker), reused by each request of its connection. The head is
// written into the connection's buffer at WriteHeader (or the first Write),
// and the whole response is flushed when the handler returns, or at Flush.
// Framing: the handler's Content-Length when it set one, else chunked (for
// HTTP/1.0 clients: delimited by closing the connection); none for HEAD,
// 1xx, 204 and 304. A response that ends short of its Content-Length closes
// the connection.
type frontWriter struct {
	c              *frontConn
	h              http.Header
	wroteHeader    bool
	hijacked       bool
	noBody         bool // HEAD, 204, 304: nothing after the head
	bodyNotAllowed bool // 204, 304: writes fail
	chunked        bool
	length         int64 // the Content-Length, or -1
	written        int64
	closeAfter     bool  // the connection ends with this response
	err            error // the first failed write: the connection is done
}

// reset prepares w for the connection's next request.
func (w *frontWriter) reset() {
	*w = frontWriter{c: w.c, h: w.h, length: -1}
}

// clientWatcher is what a response writer can do to have the request's
// context end when its client goes away (the front server's does, lazily;
// net/http's server always watches).
type clientWatcher interface{ watchClient() }

func (w *frontWriter) watchClient() { w.c.startBackgroundRead() }

func (w *frontWriter) Header() http.Header { return w.h }

func (w *frontWriter) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	w.c.body.stopContinue()
	bw := w.c.bw
	if code < 200 {
		// Informational: the final response follows (101 goes through
		// Hijack).
		writeStatusLine(bw, code)
		w.writeFields()
		bw.WriteString("\r\n")
		w.setErr(bw.Flush())
		return
	}
	w.wroteHeader = true
	req := &w.c.req
	if cl := w.h["Content-Length"]; len(cl) > 0 {
		if n, ok := parseLength(cl[0]); ok && len(cl) == 1 {
			w.length = n
		} else {
			delete(w.h, "Content-Length")
		}
	}
	switch {
	case code == http.StatusNoContent || code == http.StatusNotModified:
		w.noBody, w.bodyNotAllowed = true, true
	case req.Method == http.MethodHead:
		w.noBody = true
	}
	if !w.noBody && w.length < 0 {
		if req.ProtoMinor >= 1 {
			w.chunked = true
		} else {
			w.closeAfter = true // an HTTP/1.0 body ends with the connection
		}
	}
	conn := w.h["Connection"]
	if req.Close || connTokens(conn).has("close") {
		w.closeAfter = true
	}
	writeStatusLine(bw, code)
	w.writeFields()
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter && len(conn) == 0 {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// writeFields writes the header fields of w.h but those meant as trailers.
func (w *frontWriter) writeFields() {
	for k, vv := range w.h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vv {
			writeHeaderLine(w.c.bw, k, v)
		}
	}
}

func (w *frontWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case w.err != nil:
		return 0, w.err
	case len(p) == 0:
		return 0, nil
	case w.bodyNotAllowed:
		return 0, http.ErrBodyNotAllowed
	case w.noBody:
		return len(p), nil // HEAD: the body is not sent
	case w.length >= 0 && w.written+int64(len(p)) > w.length:
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	bw := w.c.bw
	if w.chunked {
		writeUint(bw, uint64(len(p)), 16)
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if err == nil && w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	w.setErr(err)
	return n, err
}

func (w *frontWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush, with its error (for http.ResponseController).
func (w *frontWriter) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	err := w.c.bw.Flush()
	w.setErr(err)
	return err
}

// Hijack hands the connection to the handler (an upgrade), with what is
// buffered of it either way.
func (w *frontWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	c := w.c
	c.stopBackgroundRead()
	w.hijacked = true
	c.s.untrack(c)
	_ = c.nc.SetDeadline(time.Time{})
	return c.nc, bufio.NewReadWriter(c.br, c.bw), nil
}

var zeroLength = []string{"0"}

// finish ends the response after the handler returned, and reports whether
// it reached the connection whole.
func (w *frontWriter) finish() bool {
	if !w.wroteHeader {
		if _, ok := w.h["Content-Length"]; !ok {
			w.h["Content-Length"] = zeroLength
		}
		w.WriteHeader(http.StatusOK)
	}
	bw := w.c.bw
	if w.chunked && w.err == nil {
		bw.WriteString("0\r\n")
		w.writeTrailers()
		bw.WriteString("\r\n")
	}
	if !w.noBody && w.length >= 0 && w.written < w.length {
		w.closeAfter = true // the client waits for bytes that never come
	}
	if w.err == nil {
		w.setErr(bw.Flush())
	}
	return w.err == nil
}

// writeTrailers writes the trailer fields: those the Trailer header
// announced, set after the head, and those set with http.TrailerPrefix.
func (w *frontWriter) writeTrailers() {
	bw := w.c.bw
	for _, v := range w.h["Trailer"] {
		for v != "" {
			var k string
			k, v, _ = strings.Cut(v, ",")
			k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))
			for _, tv := range w.h[k] {
				writeHeaderLine(bw, k, tv)
			}
		}
	}
	for k, vv := range w.h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vv {
				writeHeaderLine(bw, name, v)
			}
		}
	}
}

func (w *frontWriter) setErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
		w.closeAfter = true
	}
}

// writeStatusLine writes "HTTP/1.1 code text\r\n" for a code of 100 to 999.
func writeStatusLine(bw *bufio.Writer, code int) {
	bw.WriteString("HTTP/1.1 ")
	bw.WriteByte(byte('0' + code/100))
	bw.WriteByte(byte('0' + code/10%10))
	bw.WriteByte(byte('0' + code%10))
	bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code")
	}
	bw.WriteString("\r\n")
}
