package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"testing"
	"time"
)

var fastHeadCases = []struct {
	name, head string
	method     string
	fast       bool
}{
	{"plain", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", "GET", true},
	{"no reason", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", "GET", true},
	{"lower-case names", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a:  b \r\n\r\nok", "GET", true},
	{"repeated header", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", "GET", true},
	{"HEAD without length", "HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n", "HEAD", true},
	{"204", "HTTP/1.1 204 No Content\r\n\r\n", "GET", true},
	{"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", "GET", true},

	{"close-delimited", "HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nhello", "GET", false},
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "GET", false},
	{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "GET", false},
	{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "GET", false},
	{"same length twice", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "GET", false},
	{"length list", "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", "GET", false},
	{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", "GET", false},
	{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"1xx", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", "GET", false},
	{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "GET", false},
	{"Connection", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"Keep-Alive", "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"Trailer", "HTTP/1.1 200 OK\r\nTrailer: X-A\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "GET", false},
	{"bare LF in headers", "HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", "GET", false},
	{"CR in value", "HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: b\x00\r\nContent-Length: 2\r\n\r\nok", "GET", false},
	{"incomplete", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", "GET", false},
}

// TestScanFastHead: the common heads are read by readFast, every other
// (framing net/http decides, or that could be read two ways) is left to
// net/http.
func TestScanFastHead(t *testing.T) {
	for _, tc := range fastHeadCases {
		if _, fast := scanFastHead([]byte(tc.head), tc.method); fast != tc.fast {
			t.Errorf("%s: scanFastHead(%q) fast = %v, want %v", tc.name, tc.head, fast, tc.fast)
		}
	}
}

// FuzzFastHead: whatever readFast reads, net/http's ReadResponse reads the
// same way: status, header, length and body.
func FuzzFastHead(f *testing.F) {
	for _, tc := range fastHeadCases {
		f.Add([]byte(tc.head), tc.method == "HEAD")
	}
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		fh, fast := scanFastHead(raw, method)
		if !fast {
			return
		}
		req := &http.Request{Method: method}
		want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
		if err != nil {
			t.Fatalf("readFast takes %q, net/http refuses it: %v", raw, err)
		}
		wantBody, wantErr := io.ReadAll(want.Body)

		c := &bconn{br: bufio.NewReaderSize(bytes.NewReader(raw), len(raw)+16)}
		c.br.Peek(len(raw))
		h := http.Header{}
		got := c.readFast(fh, req, h)
		gotBody, gotErr := io.ReadAll(got.Body)
		if got.StatusCode != want.StatusCode || got.ContentLength != want.ContentLength || !reflect.DeepEqual(h, want.Header) {
			t.Errorf("%q: readFast = %d, length %d, %v; net/http = %d, length %d, %v",
				raw, got.StatusCode, got.ContentLength, h, want.StatusCode, want.ContentLength, want.Header)
		}
		if !bytes.Equal(gotBody, wantBody) || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%q: readFast body %q (%v), net/http's %q (%v)", raw, gotBody, gotErr, wantBody, wantErr)
		}
	})
}

// TestPoolClosesExpired: connections idle longer than idleConnTimeout are
// closed, the others kept, most recent last.
func TestPoolClosesExpired(t *testing.T) {
	now := time.Now()
	var p connPool
	var conns []net.Conn
	for _, idle := range []time.Duration{2 * idleConnTimeout, idleConnTimeout + time.Second, time.Second, 0} {
		a, b := net.Pipe()
		conns = append(conns, b)
		t.Cleanup(func() { a.Close(); b.Close() })
		p.put(&bconn{conn: a, br: bufio.NewReader(a)}, now.Add(-idle))
	}
	p.closeExpired(now)
	if len(p.idle) != 2 || !p.idle[0].idleAt.Equal(now.Add(-time.Second)) {
		t.Fatalf("after closeExpired: %d idle, want the 2 recent ones", len(p.idle))
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if closed := err == io.EOF || errors.Is(err, io.ErrClosedPipe); closed != (i < 2) {
			t.Errorf("connection %d: read %v; want closed %v", i, err, i < 2)
		}
	}
}
