package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Reading requests. The parser is strict where proxies get smuggled
// through, and never reads a request in a way net/http's ReadRequest
// (FuzzForward's reference) would read differently; where the two differ,
// it refuses:
//   - a request line of exactly METHOD SP TARGET SP HTTP/1.x (another
//     version is 505), a token method, a target without controls or spaces;
//     CONNECT is 405;
//   - header lines ending in CRLF or a bare LF (RFC 9112 section 2.2); a
//     bare CR anywhere, a control byte in a value, a name that is not a
//     token or a space before the colon is 400; so is obsolete line
//     folding;
//   - the head (request line and headers) within Config.MaxHeaderBytes and
//     maxHeaderLines lines, else 431; within Config.HeaderTimeout of the
//     connection's accept (or of the first byte of a kept-alive
//     connection's next request), else the connection is closed;
//   - exactly one Host (HTTP/1.1), of the bytes a host may have;
//   - Content-Length: digits only; several must all be the same;
//   - Transfer-Encoding: exactly one "chunked" (anything else is 501), and
//     never beside a Content-Length (400); on HTTP/1.0 it is ignored, as
//     net/http does, and the connection closed after the response;
//   - chunked bodies: hex sizes (at most 15 digits), every line ending in
//     CRLF, CRLF after every chunk's data, well-formed trailer lines (which
//     are read and dropped); a body that breaks these is a failed read,
//     which the balancer answers 400;
//   - Expect: only 100-continue (417 otherwise), answered with 100 Continue
//     when the body is first read.

// maxHeaderLines bounds a request's header lines (and a chunked body's
// trailer lines); more is 431.
const maxHeaderLines = 256

// requestError is a request refused with an HTTP status.
type requestError struct {
	code int
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{code: http.StatusBadRequest, msg: msg} }

var errHeadTooLarge = &requestError{code: http.StatusRequestHeaderFieldsTooLarge, msg: "request head too large"}

// readRequest reads the next request into c.req. A refusal comes with its
// status; an error without one (the client went away, or was too slow)
// closes the connection without an answer.
func (c *frontConn) readRequest(first bool) (int, error) {
	head, err := c.readHead(first)
	if err == nil {
		err = c.parseRequest(head)
	}
	var re *requestError
	if errors.As(err, &re) {
		return re.code, err
	}
	return 0, err
}

// readHead reads the request line and headers, up to and including the
// empty line, as one string: one allocation for every part of the head.
func (c *frontConn) readHead(first bool) (string, error) {
	limit := c.s.maxHeader
	deadline := first // a new connection's header deadline is set already
	c.head = c.head[:0]
	for {
		if _, err := c.br.Peek(1); err != nil {
			return "", err
		}
		buf, _ := c.br.Peek(c.br.Buffered())
		if len(c.head) == 0 {
			// The common case: the whole head arrived in one read.
			if end := headEnd(buf, 0); end >= 0 {
				if end > limit {
					return "", errHeadTooLarge
				}
				s := string(buf[:end])
				_, _ = c.br.Discard(end)
				return s, nil
			}
		}
		old := len(c.head)
		c.head = append(c.head, buf...)
		if end := headEnd(c.head, max(0, old-3)); end >= 0 {
			if end > limit {
				return "", errHeadTooLarge
			}
			_, _ = c.br.Discard(end - old)
			s := string(c.head[:end])
			if cap(c.head) > 4*frontBufSize {
				c.head = nil // a large head's buffer is not kept
			}
			return s, nil
		}
		if len(c.head) > limit {
			return "", errHeadTooLarge
		}
		_, _ = c.br.Discard(len(buf))
		if !deadline {
			// The head did not come whole: the rest must come within
			// the header timeout.
			_ = c.nc.SetReadDeadline(time.Now().Add(c.s.headerTimeout))
			deadline = true
		}
	}
}

// headEnd returns the length of the head at b's start (up to and including
// its empty line), looking for the end from index from on, or -1 when b
// holds no whole head. A head that starts with an empty line ends there
// (and is refused).
func headEnd(b []byte, from int) int {
	if from == 0 {
		switch {
		case len(b) >= 1 && b[0] == '\n':
			return 1
		case len(b) >= 2 && b[0] == '\r' && b[1] == '\n':
			return 2
		}
	}
	for i := from; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// nextLine splits s after its first line, dropping the line's CRLF or LF.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// Shared read-only values of parsed requests.
var chunkedTE = []string{"chunked"}

// parseRequest parses head into c.req, its header into c.header, and sets
// up its body.
func (c *frontConn) parseRequest(head string) error {
	r := &c.req
	*r = *c.tmpl
	line, rest := nextLine(head)
	method, target, proto, ok := splitRequestLine(line)
	if !ok {
		return badRequest("malformed request line")
	}
	switch proto {
	case "HTTP/1.1":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	case "HTTP/1.0":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
	default:
		if _, _, ok := http.ParseHTTPVersion(proto); ok {
			return &requestError{code: http.StatusHTTPVersionNotSupported, msg: "unsupported protocol version " + proto}
		}
		return badRequest("malformed protocol version")
	}
	if method == http.MethodConnect {
		return &requestError{code: http.StatusMethodNotAllowed, msg: "CONNECT is not served"}
	}
	r.Method, r.RequestURI = method, target
	if cleanTarget(target) {
		path, query, hasQuery := strings.Cut(target, "?")
		c.url = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
		r.URL = &c.url
	} else {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return badRequest("malformed request target")
		}
		r.URL = u
	}

	h := c.header
	c.values = c.values[:0]
	var (
		hosts, tes   int
		host, te, cl string
		clSeen       bool
		expect       string
		length       int64
		lines        int
	)
	for {
		line, rest = nextLine(rest)
		if line == "" {
			break // the empty line: headEnd ends the head at the first
		}
		if lines++; lines > maxHeaderLines {
			return &requestError{code: http.StatusRequestHeaderFieldsTooLarge, msg: "too many header lines"}
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest("obsolete line folding")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !validName(line[:colon]) {
			return badRequest("malformed header line")
		}
		name, value := line[:colon], trimOWSString(line[colon+1:])
		if !validValue(value) {
			return badRequest("control character in header value")
		}
		switch {
		case asciiEqualFold(name, "Host"):
			hosts++
			host = value
			continue // in r.Host, as net/http has it
		case asciiEqualFold(name, "Content-Length"):
			// The same value twice is one length (net/http compares them
			// as strings too); different ones are two framings.
			if clSeen && value != cl {
				return badRequest("two different Content-Lengths")
			}
			n, ok := parseLength(value)
			if !ok {
				return badRequest("malformed Content-Length")
			}
			clSeen, cl, length = true, value, n
		case asciiEqualFold(name, "Transfer-Encoding"):
			tes++
			te = value
		case asciiEqualFold(name, "Expect"):
			expect = value
		}
		key := name
		if !isCanonical(name) {
			key = textproto.CanonicalMIMEHeaderKey(name)
		}
		c.values = append(c.values, value)
		if prior, ok := h[key]; ok {
			h[key] = append(prior, value)
		} else {
			i := len(c.values) - 1
			h[key] = c.values[i : i+1 : i+1]
		}
	}
	r.Header = h
	switch {
	case hosts > 1:
		return badRequest("more than one Host")
	case hosts == 0 && r.ProtoMinor == 1:
		return badRequest("missing Host")
	case !validHost(host):
		return badRequest("malformed Host")
	}
	r.Host = host
	if r.URL.Host != "" {
		r.Host = r.URL.Host // an absolute target names the host, as in net/http
	}
	conn := connTokens(h["Connection"])
	if r.ProtoMinor == 0 {
		r.Close = !conn.has("keep-alive")
	} else {
		r.Close = conn.has("close")
	}

	chunked := false
	if tes > 0 {
		if r.ProtoMinor == 0 {
			// RFC 9112 section 6.1: the framing is faulty; net/http reads
			// the body by its Content-Length. Nothing more is read.
			r.Close = true
		} else {
			if tes > 1 || !strings.EqualFold(te, "chunked") {
				return &requestError{code: http.StatusNotImplemented, msg: "unsupported Transfer-Encoding"}
			}
			if clSeen {
				return badRequest("both Content-Length and Transfer-Encoding")
			}
			chunked = true
		}
	}
	wantsContinue := false
	if expect != "" {
		if !strings.EqualFold(expect, "100-continue") {
			return &requestError{code: http.StatusExpectationFailed, msg: "unsupported Expect"}
		}
		delete(h, "Expect") // answered here, as net/http does
		wantsContinue = r.ProtoMinor == 1 && (chunked || length > 0)
	}
	switch {
	case chunked:
		r.ContentLength, r.TransferEncoding, r.Body = -1, chunkedTE, &c.body
		c.body.start(true, 0, wantsContinue)
	case length > 0:
		r.ContentLength, r.Body = length, &c.body
		c.body.start(false, length, wantsContinue)
	default:
		r.ContentLength, r.Body = 0, http.NoBody
		c.body.start(false, 0, false)
	}
	if r.Body != http.NoBody || conn.has("upgrade") {
		// A body (or an upgraded connection) has no deadline.
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	return nil
}

// splitRequestLine splits "METHOD SP TARGET SP PROTO".
func splitRequestLine(line string) (method, target, proto string, ok bool) {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || target == "" || !validName(method) {
		return "", "", "", false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return "", "", "", false
		}
	}
	return method, target, proto, true
}

// cleanTarget reports whether target is an origin-form request target that
// url.URL.RequestURI gives back unchanged once parsed: a path of bytes that
// are never escaped, then an optional query of printable ASCII without '#'.
func cleanTarget(target string) bool {
	if target == "" || target[0] != '/' {
		return false
	}
	i := 0
	for ; i < len(target) && target[i] != '?'; i++ {
		if c := target[i]; c >= 0x80 || !pathByte[c] {
			return false
		}
	}
	for ; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

var pathByte = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "-._~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// requestTarget is the target to send a backend for r: the client's own
// when it is clean, else net/http's reading of it.
func requestTarget(r *http.Request) string {
	if cleanTarget(r.RequestURI) {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// parseLength parses a Content-Length: 1 to 18 digits.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		d := s[i]
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// isCanonical reports whether name is in textproto's canonical form.
func isCanonical(name string) bool {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// validHost reports whether h has only bytes a Host may have (net/http's
// set: the URI host and port characters).
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 0x80 || !hostByte[c] {
			return false
		}
	}
	return true
}

var hostByte = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		t[c] = true
	}
	return t
}()

// frontBody is the current request's body, read from the client
// connection's buffer; each connection reuses its own.
type frontBody struct {
	c       *frontConn
	chunked bool
	n       int64 // what is left of the Content-Length body or of the current chunk
	excess  int64 // chunked framing bytes beyond the allowance (as net/http counts them)
	err     error // sticky: io.EOF once read to its end
	ended   atomic.Bool

	// 100 Continue: owed before the first read (expect), unless the
	// response began (continueOff). The body may be read on another
	// goroutine than the response is written on.
	wantsContinue bool
	expect        bool
	continueMu    sync.Mutex
	continueOff   bool
	continueSent  bool
}

func (b *frontBody) start(chunked bool, n int64, wantsContinue bool) {
	b.chunked, b.n, b.excess, b.err = chunked, n, 0, nil
	b.wantsContinue, b.expect, b.continueOff, b.continueSent = wantsContinue, wantsContinue, false, false
	b.ended.Store(!chunked && n == 0)
	if !chunked && n == 0 {
		b.err = io.EOF
	}
}

// done reports whether the body was read to its end or failed; safe from
// any goroutine.
func (b *frontBody) done() bool { return b.ended.Load() }

var (
	errChunkLine    = errors.New("malformed chunk line")
	errChunkSize    = errors.New("invalid chunk size")
	errChunkEnd     = errors.New("chunk data not followed by CRLF")
	errChunkExcess  = errors.New("chunked encoding contains too much non-data")
	errTrailer      = errors.New("malformed trailer line")
	errTrailerCount = errors.New("too many trailer lines")
)

func (b *frontBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.expect {
		b.expect = false
		if err := b.sendContinue(); err != nil {
			return 0, b.fail(err)
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.chunked {
		n, err := b.readChunked(p)
		if err != nil {
			b.fail(err)
		}
		return n, err
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.c.br.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		err = io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.fail(err)
	}
	return n, err
}

func (b *frontBody) Close() error { return nil }

func (b *frontBody) fail(err error) error {
	b.err = err
	b.ended.Store(true)
	return err
}

// sendContinue answers Expect: 100-continue, unless the response began.
func (b *frontBody) sendContinue() error {
	b.continueMu.Lock()
	defer b.continueMu.Unlock()
	if b.continueOff {
		return nil
	}
	b.continueOff, b.continueSent = true, true
	b.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return b.c.bw.Flush()
}

// stopContinue is called before the response's first byte: no 100 Continue
// may follow it.
func (b *frontBody) stopContinue() {
	if !b.wantsContinue {
		return
	}
	b.continueMu.Lock()
	b.continueOff = true
	b.continueMu.Unlock()
}

func (b *frontBody) readChunked(p []byte) (int, error) {
	if b.n == 0 {
		if err := b.beginChunk(); err != nil {
			return 0, err // io.EOF after the last chunk
		}
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.c.br.Read(p)
	b.n -= int64(n)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	if err == nil && b.n == 0 {
		err = b.chunkEnd()
	}
	return n, err
}

// beginChunk reads a chunk's size line (and, after the last chunk, the
// trailer).
func (b *frontBody) beginChunk() error {
	line, err := b.readLine(errChunkLine)
	if err != nil {
		return err
	}
	b.excess += int64(len(line)) + 2
	size, ext, _ := bytes.Cut(line, []byte{';'})
	if len(size) == 0 || len(size) > 15 || !validValue(ext) {
		return errChunkSize
	}
	var n int64
	for _, d := range size {
		var v byte
		switch {
		case '0' <= d && d <= '9':
			v = d - '0'
		case 'a' <= d && d <= 'f':
			v = d - 'a' + 10
		case 'A' <= d && d <= 'F':
			v = d - 'A' + 10
		default:
			return errChunkSize
		}
		n = n<<4 | int64(v)
	}
	// A sender may not pad tiny chunks with extensions without bound.
	b.excess = max(b.excess-16-2*n, 0)
	if b.excess > 16<<10 {
		return errChunkExcess
	}
	if n == 0 {
		return b.readTrailer()
	}
	b.n = n
	return nil
}

// readLine reads one line of chunked framing, which must end in CRLF and
// hold no other CR, and returns it without the CRLF.
func (b *frontBody) readLine(malformed error) ([]byte, error) {
	line, err := b.c.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, malformed // longer than the buffer
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	n := len(line)
	if n < 2 || line[n-2] != '\r' || bytes.IndexByte(line[:n-2], '\r') >= 0 {
		return nil, malformed
	}
	return line[:n-2], nil
}

func (b *frontBody) chunkEnd() error {
	crlf, err := b.c.br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return errChunkEnd
	}
	_, _ = b.c.br.Discard(2)
	return nil
}

// readTrailer reads (and drops) the trailer fields after the last chunk,
// and returns io.EOF at their end.
func (b *frontBody) readTrailer() error {
	for i := 0; ; i++ {
		line, err := b.readLine(errTrailer)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return io.EOF
		}
		if i == maxHeaderLines {
			return errTrailerCount
		}
		colon := bytes.IndexByte(line, ':')
		if line[0] == ' ' || line[0] == '\t' || colon <= 0 || !validName(line[:colon]) || !validValue(trimOWS(line[colon+1:])) {
			return errTrailer
		}
	}
}

// discardRest reads what the handler left of the body (at most
// maxDiscard), and reports whether the connection can carry another
// request.
func (b *frontBody) discardRest() bool {
	if b.done() {
		return b.err == io.EOF
	}
	if b.expect {
		return false // the client still waits for 100 Continue: its body may never come
	}
	_ = b.c.nc.SetReadDeadline(time.Now().Add(b.c.s.headerTimeout))
	_, _ = io.CopyN(io.Discard, b, maxDiscard)
	return b.err == io.EOF
}
