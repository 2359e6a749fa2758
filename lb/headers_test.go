package lb_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lb"
)

// TestForwardingHeaders: hop-by-hop headers, and those a request's
// Connection header names, do not reach the backend; the X-Forwarded-*
// headers are the balancer's, and a client's are kept only with
// TrustForwarded.
func TestForwardingHeaders(t *testing.T) {
	const sent = "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nForwarded: for=10.0.0.1\r\n" +
		"Connection: keep-alive, X-Foo\r\nX-Foo: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTe: trailers\r\nUpgrade-Insecure-Requests: 1\r\nX-Kept: yes\r\n"
	for _, tc := range []struct {
		trust bool
		want  map[string]string // header: value at the backend ("" = absent)
	}{
		{false, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "", "Forwarded": "",
			"X-Foo": "", "Keep-Alive": "", "Proxy-Connection": "", "Connection": "", "X-Kept": "yes", "Upgrade-Insecure-Requests": "1",
		}},
		{true, map[string]string{
			"X-Forwarded-For": "10.0.0.1, 127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.test", "Forwarded": "for=10.0.0.1",
			"X-Foo": "", "Keep-Alive": "", "Connection": "", "X-Kept": "yes",
		}},
	} {
		t.Run(fmt.Sprintf("trust=%v", tc.trust), func(t *testing.T) {
			b, rec := startSmuggleRig(t, lb.Config{TrustForwarded: tc.trust})
			ex := sendRaw(b.Addr(), []byte("GET /h HTTP/1.1\r\n"+host+sent+"\r\n"), 1, 50*time.Millisecond, nil)
			got := complete(settle(b, rec))
			if ex.err != nil || len(got) != 1 {
				t.Fatalf("exchange %s; backend saw %d requests, want 1", ex, len(got))
			}
			checkOneFraming(t, got)
			for k, want := range tc.want {
				if v := strings.Join(got[0].Header[k], ", "); v != want {
					t.Errorf("backend's %s = %q, want %q", k, v, want)
				}
			}
			if h := got[0].Header.Get("Host"); h != "app.test" {
				t.Errorf("backend's Host = %q, want the client's app.test", h)
			}
		})
	}
}
