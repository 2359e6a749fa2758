package lb

import (
	"bytes"
	"io"
	"net/http"
	"net/textproto"
)

// The common answer's head — HTTP/1.1, a final status, a Content-Length
// (or no body at all), no hop-by-hop header, plain header lines, all already
// in the connection's buffer — is read here straight into the client's
// header map, at two allocations. Anything else is left to net/http's
// ReadResponse, which is strict about framing: nothing that could be read
// two ways is read here.

// fastHead describes a response head that readFast takes.
type fastHead struct {
	size    int   // bytes up to and including the empty line
	code    int   // status code
	length  int64 // Content-Length, or -1 when none was sent
	headers int   // header lines
}

// scanFastHead reports whether buf starts with a head readFast takes as the
// answer to a request with method, and describes it.
func scanFastHead(buf []byte, method string) (fastHead, bool) {
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		return fastHead{}, false // not all here yet: net/http waits for it
	}
	head := fastHead{size: end + 4, length: -1}
	block := buf[:end+2] // each line with its CRLF
	nl := bytes.IndexByte(block, '\n')
	status := block[:nl+1]
	// "HTTP/1.1 200 OK\r\n": the reason may be empty, but not the space.
	if len(status) < 15 || string(status[:9]) != "HTTP/1.1 " || status[12] != ' ' || status[nl-1] != '\r' {
		return fastHead{}, false
	}
	for _, d := range status[9:12] {
		if d < '0' || d > '9' {
			return fastHead{}, false
		}
		head.code = head.code*10 + int(d-'0')
	}
	if head.code < 200 || head.code > 599 || !validValue(status[13:nl-1]) {
		return fastHead{}, false
	}
	for rest := block[nl+1:]; len(rest) > 0; {
		nl := bytes.IndexByte(rest, '\n')
		line := rest[:nl+1]
		rest = rest[nl+1:]
		if nl < 1 || line[nl-1] != '\r' {
			return fastHead{}, false // a bare LF
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 1 || !validName(line[:colon]) {
			return fastHead{}, false // obs-fold, a space before the colon, a bad name
		}
		value := trimOWS(line[colon+1 : nl-1])
		if !validValue(value) {
			return fastHead{}, false
		}
		name := line[:colon]
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if head.length >= 0 || len(value) == 0 || len(value) > 18 {
				return fastHead{}, false // twice (even if equal), empty, too long
			}
			head.length = 0
			for _, d := range value {
				if d < '0' || d > '9' {
					return fastHead{}, false
				}
				head.length = head.length*10 + int64(d-'0')
			}
		case hopOrFraming(name):
			return fastHead{}, false
		}
		head.headers++
	}
	if head.length < 0 && method != http.MethodHead && head.code != http.StatusNoContent && head.code != http.StatusNotModified {
		return fastHead{}, false // delimited by the connection's close
	}
	return head, true
}

var crlfcrlf = []byte("\r\n\r\n")

// hopOrFraming reports whether a response header needs net/http's reading:
// hop-by-hop headers (and so Connection, which may name more), and framing
// other than Content-Length.
func hopOrFraming(name []byte) bool {
	for _, k := range [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		if asciiEqualFold(name, k) {
			return true
		}
	}
	return false
}

// readFast reads the head scanFastHead described from c into h (the
// client's header map, which holds no backend header yet) and returns the
// response, its body reading from c. res and its body live in c.
func (c *bconn) readFast(head fastHead, req *http.Request, h http.Header) *http.Response {
	buf, _ := c.br.Peek(head.size)
	block := string(buf[:head.size-2]) // one allocation for every name and value
	_, _ = c.br.Discard(head.size)
	values := make([]string, head.headers) // and one for every header's []string
	lines := block[indexByte(block, '\n')+1:]
	for i := 0; len(lines) > 0; i++ {
		nl := indexByte(lines, '\n')
		line := lines[:nl-1]
		lines = lines[nl+1:]
		colon := indexByte(line, ':')
		name := textproto.CanonicalMIMEHeaderKey(line[:colon]) // no allocation when already canonical
		values[i] = trimOWSString(line[colon+1:])
		if prior, ok := h[name]; ok {
			h[name] = append(prior, values[i])
		} else {
			h[name] = values[i : i+1 : i+1]
		}
	}
	c.res = http.Response{StatusCode: head.code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		ContentLength: head.length, Request: req}
	switch {
	case req.Method == http.MethodHead:
		c.res.Body = http.NoBody
	case head.code == http.StatusNoContent || head.code == http.StatusNotModified:
		c.res.ContentLength = 0 // as net/http reads them
		c.res.Body = http.NoBody
	case head.length == 0:
		c.res.Body = http.NoBody
	default:
		c.body = connBody{io.LimitedReader{R: c.br, N: head.length}}
		c.res.Body = &c.body
	}
	return &c.res
}

// connBody is a Content-Length body read from a backend connection's
// buffer; a body that ends early is io.ErrUnexpectedEOF, as net/http's.
type connBody struct{ io.LimitedReader }

func (b *connBody) Read(p []byte) (int, error) {
	n, err := b.LimitedReader.Read(p)
	if err == io.EOF && b.N > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *connBody) Close() error { return nil }

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func trimOWSString(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validName reports whether b is an RFC 9110 token.
func validName[S ~string | ~[]byte](b S) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

// validValue reports whether b has no control byte but HTAB.
func validValue[S ~string | ~[]byte](b S) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func asciiEqualFold[S ~string | ~[]byte](b S, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
