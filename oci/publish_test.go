package oci

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/testport"
)

func randomImage(t testing.TB) v1.Image {
	t.Helper()
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func newPublisher(t testing.TB, repo string, opts ...Option) *Publisher {
	t.Helper()
	p, err := NewPublisher(repo, append([]Option{WithKeychain(anonymous)}, opts...)...)
	if err != nil {
		t.Fatalf("NewPublisher(%q): %v", repo, err)
	}
	return p
}

func TestPublisher(t *testing.T) {
	ctx := t.Context()
	cnt := &counter{}
	p := newPublisher(t, memRegistry(t)+"/team/app", WithTransport(cnt))
	img := randomImage(t)
	want, _ := img.Digest()
	c := commitN(10)

	d, err := p.Push(ctx, img, "sha-"+c, c[:12])
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if d != want.String() {
		t.Errorf("Push = %s, want %s", d, want)
	}
	if n := cnt.count("/blobs/uploads/", "POST"); n != 3 {
		t.Errorf("first push started %d blob uploads, want 3 (2 layers + config)", n)
	}
	for _, tag := range []string{"sha-" + c, c[:12]} {
		if got, err := p.Resolve(ctx, tag); err != nil || got != d {
			t.Errorf("Resolve(%s) = %s, %v, want %s", tag, got, err, d)
		}
	}
	pulled, err := p.Image(ctx, d)
	if err != nil {
		t.Fatalf("Image: %v", err)
	}
	if pd, _ := pulled.Digest(); pd.String() != d {
		t.Errorf("Image(%s).Digest() = %s", d, pd)
	}

	cnt.reset()
	if d2, err := p.Push(ctx, img, "sha-"+c); err != nil || d2 != d {
		t.Fatalf("re-Push = %s, %v, want %s", d2, err, d)
	}
	if n := cnt.blobWrites(); n != 0 {
		t.Errorf("re-push made %d blob writes, want 0:\n%s", n, cnt)
	}

	cnt.reset()
	if err := p.Tag(ctx, d, "latest"); err != nil {
		t.Fatalf("Tag: %v", err)
	}
	if n := cnt.blobWrites(); n != 0 {
		t.Errorf("Tag made %d blob writes, want 0:\n%s", n, cnt)
	}
	if n := cnt.count("/blobs/", "GET", "HEAD"); n != 0 {
		t.Errorf("Tag read %d blobs, want 0:\n%s", n, cnt)
	}
	if n := cnt.count("/manifests/latest", "PUT"); n != 1 {
		t.Errorf("Tag made %d manifest PUTs, want 1:\n%s", n, cnt)
	}
	if got, err := p.Resolve(ctx, "latest"); err != nil || got != d {
		t.Errorf("Resolve(latest) = %s, %v, want %s", got, err, d)
	}
	tags, err := p.ListTags(ctx)
	slices.Sort(tags)
	if err != nil || !slices.Contains(tags, "latest") || !slices.Contains(tags, "sha-"+c) {
		t.Errorf("ListTags = %v, %v, want latest and sha-%s among them", tags, err, c)
	}
}

func TestPublisherNotFound(t *testing.T) {
	ctx := t.Context()
	p := newPublisher(t, memRegistry(t)+"/app")
	if tags, err := p.ListTags(ctx); err != nil || len(tags) != 0 {
		t.Errorf("ListTags(empty repository) = %v, %v, want none", tags, err)
	}
	if _, err := p.Resolve(ctx, "sha-"+commitN(11)); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Resolve(absent) = %v, want %s", err, ferry.ENOTFOUND)
	}
	if _, err := p.Push(ctx, randomImage(t), "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve(ctx, "v2"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Resolve(absent tag in existing repo) = %v, want %s", err, ferry.ENOTFOUND)
	}
	absent := "sha256:" + strings.Repeat("a", 64)
	if err := p.Tag(ctx, absent, "latest"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Tag(absent digest) = %v, want %s", err, ferry.ENOTFOUND)
	}
	if _, err := p.Image(ctx, absent); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Image(absent digest) = %v, want %s", err, ferry.ENOTFOUND)
	}
}

func TestPublisherInvalidInput(t *testing.T) {
	for _, repo := range []string{"", "app", "http://127.0.0.1:5050/app", "127.0.0.1:5050/app:v1",
		"127.0.0.1:5050/app@sha256:" + strings.Repeat("a", 64), "127.0.0.1:5050/App", "127.0.0.1:5050/a b"} {
		if _, err := NewPublisher(repo); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("NewPublisher(%q) = %v, want %s", repo, err, ferry.EINVALID)
		}
	}
	ctx := t.Context()
	p := newPublisher(t, "127.0.0.1:1/app", WithRetry(Retry{}))
	good := "sha256:" + strings.Repeat("a", 64)
	calls := []struct {
		name string
		err  error
	}{
		{"Resolve(bad tag)", func() error { _, err := p.Resolve(ctx, "bad tag"); return err }()},
		{"Resolve(empty)", func() error { _, err := p.Resolve(ctx, ""); return err }()},
		{"Resolve(a:b)", func() error { _, err := p.Resolve(ctx, "a:b"); return err }()},
		{"Tag(bad digest)", p.Tag(ctx, "sha256:xyz", "latest")},
		{"Tag(bad tag)", p.Tag(ctx, good, "-latest")},
		{"Image(bad digest)", func() error { _, err := p.Image(ctx, "sha256:"); return err }()},
		{"Push(bad tag)", func() error { _, err := p.Push(ctx, randomImage(t), "ok", "not ok"); return err }()},
	}
	for _, c := range calls {
		if ferry.ErrorCode(c.err) != ferry.EINVALID {
			t.Errorf("%s = %v, want %s", c.name, c.err, ferry.EINVALID)
		}
	}
}

func TestPublisherRef(t *testing.T) {
	p := newPublisher(t, "127.0.0.1:5050/team/app")
	d := "sha256:" + strings.Repeat("b", 64)
	tests := []struct{ in, want string }{
		{d, "127.0.0.1:5050/team/app@" + d},
		{"sha-" + commitN(1), "127.0.0.1:5050/team/app:sha-" + commitN(1)},
		{"latest", "127.0.0.1:5050/team/app:latest"},
	}
	for _, tt := range tests {
		if got := p.Ref(tt.in); got != tt.want {
			t.Errorf("Ref(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := p.Repo(); got != "127.0.0.1:5050/team/app" {
		t.Errorf("Repo() = %q", got)
	}
}

func TestPushRetriesUntilRegistryUp(t *testing.T) {
	addr := testport.Addr(t)
	var notified atomic.Int32
	p := newPublisher(t, addr+"/app", WithRetry(Retry{
		Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, Deadline: 20 * time.Second,
		Notify: func(err error, attempt int, wait time.Duration) { notified.Add(1) },
	}))
	go func() {
		time.Sleep(400 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen %s: %v", addr, err)
			return
		}
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}}
		srv.Start()
		t.Cleanup(srv.Close)
	}()
	img := randomImage(t)
	d, err := p.Push(t.Context(), img, "v1")
	if err != nil {
		t.Fatalf("Push while the registry comes up: %v", err)
	}
	if n := notified.Load(); n < 2 {
		t.Errorf("retries notified = %d, want ≥ 2 (the registry was down for 400ms)", n)
	}
	if got, err := p.Resolve(t.Context(), "v1"); err != nil || got != d {
		t.Errorf("Resolve(v1) = %s, %v, want %s", got, err, d)
	}
}

func TestPushRegistryDown(t *testing.T) {
	addr := testport.Addr(t)
	var attempts atomic.Int32
	deadline := 300 * time.Millisecond
	p := newPublisher(t, addr+"/app", WithRetry(Retry{
		Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Deadline: deadline,
		Notify: func(error, int, time.Duration) { attempts.Add(1) },
	}))
	start := time.Now()
	_, err := p.Push(t.Context(), randomImage(t), "v1")
	took := time.Since(start)
	if err == nil {
		t.Fatal("Push to a registry that is down succeeded")
	}
	if !IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false, want true", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v does not keep its cause (connection refused)", err)
	}
	if took < deadline || took > deadline+5*time.Second {
		t.Errorf("gave up after %s, want about %s", took, deadline)
	}
	if attempts.Load() < 3 {
		t.Errorf("retried %d times, want ≥ 3", attempts.Load())
	}
	// Resolve and Image report the same kind of error.
	if _, err := p.Resolve(t.Context(), "v1"); !IsRetryable(err) {
		t.Errorf("Resolve on a down registry: IsRetryable(%v) = false", err)
	}
	if _, err := p.Image(t.Context(), "sha256:"+strings.Repeat("c", 64)); !IsRetryable(err) {
		t.Errorf("Image on a down registry: IsRetryable(%v) = false", err)
	}
}

func TestPushCanceledWhileRetrying(t *testing.T) {
	p := newPublisher(t, testport.Addr(t)+"/app", WithRetry(Retry{Initial: 50 * time.Millisecond, Deadline: time.Minute}))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Push(ctx, randomImage(t))
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Push with a canceled context = %v, want context.DeadlineExceeded", err)
	}
	if IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = true for a canceled push, want false", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("canceled push returned after %s", took)
	}
}

// flaky serves an in-memory registry but answers the first n requests
// with status.
func flaky(t testing.TB, n int32, status int) (host string, failed *atomic.Int32) {
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	failed = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failed.Add(1) <= n {
			http.Error(w, "try later", status)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), failed
}

func TestPushRetries5xx(t *testing.T) {
	host, _ := flaky(t, 3, http.StatusServiceUnavailable)
	var notified atomic.Int32
	p := newPublisher(t, host+"/app", WithRetry(Retry{
		Initial: 5 * time.Millisecond, Deadline: 10 * time.Second,
		Notify: func(error, int, time.Duration) { notified.Add(1) },
	}))
	if _, err := p.Push(t.Context(), randomImage(t), "v1"); err != nil {
		t.Fatalf("Push through three 503s: %v", err)
	}
	if notified.Load() == 0 {
		t.Error("no retry was notified")
	}
}

func TestUnauthorizedIsTerminal(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="ferry-test"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}))
	t.Cleanup(srv.Close)
	var notified atomic.Int32
	p := newPublisher(t, strings.TrimPrefix(srv.URL, "http://")+"/app", WithRetry(Retry{
		Initial: 10 * time.Millisecond, Deadline: 10 * time.Second,
		Notify: func(error, int, time.Duration) { notified.Add(1) },
	}))
	start := time.Now()
	_, err := p.Push(t.Context(), randomImage(t), "v1")
	if err == nil {
		t.Fatal("Push to a registry denying access succeeded")
	}
	if IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = true, want false (401 is terminal)", err)
	}
	if te, ok := errors.AsType[*transport.Error](err); !ok || te.StatusCode != http.StatusUnauthorized {
		t.Errorf("error %v: want a 401 transport error in the chain", err)
	}
	if notified.Load() != 0 || time.Since(start) > 5*time.Second {
		t.Errorf("401 retried %d times over %s, want no retry", notified.Load(), time.Since(start))
	}
}

func TestManifestInvalidIsTerminal(t *testing.T) {
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}`)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p := newPublisher(t, strings.TrimPrefix(srv.URL, "http://")+"/app", WithRetry(Retry{Initial: 10 * time.Millisecond, Deadline: 10 * time.Second}))
	_, err := p.Push(t.Context(), randomImage(t))
	if err == nil || IsRetryable(err) || !strings.Contains(err.Error(), "MANIFEST_INVALID") {
		t.Errorf("Push with a refused manifest = %v, want a terminal MANIFEST_INVALID error", err)
	}
}

func TestTransient(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/v2/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"unexpected EOF", fmt.Errorf("body: %w", io.ErrUnexpectedEOF), true},
		{"503", &transport.Error{StatusCode: 503}, true},
		{"500", &transport.Error{StatusCode: 500}, true},
		{"429", &transport.Error{StatusCode: 429}, true},
		{"401", &transport.Error{StatusCode: 401}, false},
		{"403", &transport.Error{StatusCode: 403}, false},
		{"404", &transport.Error{StatusCode: 404}, false},
		{"400", &transport.Error{StatusCode: 400}, false},
		{"canceled", context.Canceled, false},
		{"deadline", context.DeadlineExceeded, false},
		{"dns not found", &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}, false},
		{"dns temporary", &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, true},
		{"bad certificate", &url.Error{Op: "Get", URL: "https://x/v2/", Err: x509.UnknownAuthorityError{}}, false},
		{"other", errors.New("manifest invalid"), false},
	}
	for _, tt := range tests {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%s: %v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// switchableKeychain answers with whatever credentials were set last, as a
// docker configuration written while ferry runs would.
type switchableKeychain struct{ auth atomic.Pointer[authn.Basic] }

func (k *switchableKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	if b := k.auth.Load(); b != nil {
		return b, nil
	}
	return authn.Anonymous, nil
}

// TestCredentialsWrittenAfterFirstContact: a registry that refused a call
// for want of credentials takes the credentials that exist at the next
// call, through the same Publisher, for every kind of call.
func TestCredentialsWrittenAfterFirstContact(t *testing.T) {
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); !ok || u != "ada" || pw != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="ferry-test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	img := randomImage(t)
	for _, tc := range []struct {
		name string
		call func(*Publisher) error
	}{
		{"push", func(p *Publisher) error { _, err := p.Push(t.Context(), img, "v1"); return err }},
		{"resolve", func(p *Publisher) error { _, err := p.Resolve(t.Context(), "v1"); return err }},
		{"list", func(p *Publisher) error { _, err := p.ListTags(t.Context()); return err }},
		{"pull", func(p *Publisher) error { d, _ := img.Digest(); _, err := p.Image(t.Context(), d.String()); return err }},
	} {
		keys := &switchableKeychain{}
		p, err := NewPublisher(strings.TrimPrefix(srv.URL, "http://")+"/app", WithKeychain(keys), WithRetry(Retry{Initial: 10 * time.Millisecond, Deadline: 5 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.call(p); err == nil {
			t.Fatalf("%s without credentials succeeded", tc.name)
		} else if te, ok := errors.AsType[*transport.Error](err); !ok || te.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s without credentials: %v, want 401", tc.name, err)
		}
		keys.auth.Store(&authn.Basic{Username: "ada", Password: "s3cret"})
		if err := tc.call(p); err != nil {
			t.Errorf("%s after the credentials were written: %v", tc.name, err)
		}
	}
}
