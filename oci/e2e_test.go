package oci

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/registry"
)

// startRegistry runs the embedded production registry on a temp directory.
func startRegistry(t testing.TB) *registry.Server {
	t.Helper()
	srv, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestEmbeddedRegistryEndToEnd is the image step as ferry runs it: build a
// Go server from source, push it with its commit tags to the embedded
// registry, resolve the tags, pull it back, check its labels, run it, and
// check that pushing and tagging it again upload nothing.
func TestEmbeddedRegistryEndToEnd(t *testing.T) {
	ctx := t.Context()
	srv := startRegistry(t)
	cnt := &counter{}
	p := newPublisher(t, srv.Host()+"/hello", WithTransport(cnt), WithBasicAuth(srv.Credentials()))
	c := commitN(30)
	long, short := ferry.CommitTag(c), ferry.ShortCommitTag(c)

	start := time.Now()
	img := buildHello(t, helloModule(t), c)
	built := time.Since(start)

	// Without the registry's credentials nothing gets in.
	anon := newPublisher(t, srv.Host()+"/hello", WithRetry(Retry{Deadline: time.Second}))
	if _, err := anon.Push(ctx, img, long); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Push without credentials = %v, want a 401 refusal", err)
	}
	if _, err := p.Resolve(ctx, long); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("Resolve(%s) after the refused push = %v, want ENOTFOUND", long, err)
	}

	start = time.Now()
	d, err := p.Push(ctx, img, long, short)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	pushed := time.Since(start)
	t.Logf("build+assemble %s, push %s, image %.2f MiB", built.Round(time.Millisecond), pushed.Round(time.Millisecond), float64(imageSize(t, img))/(1<<20))

	for _, tag := range []string{long, short} {
		if got, err := p.Resolve(ctx, tag); err != nil || got != d {
			t.Errorf("Resolve(%s) = %s, %v, want %s", tag, got, err, d)
		}
	}
	if len(long) != len("sha-")+40 || len(short) != 12 {
		t.Errorf("tags %q and %q: want sha-<40 hex> and 12 hex", long, short)
	}

	pulled, err := p.Image(ctx, d)
	if err != nil {
		t.Fatalf("Image(%s): %v", d, err)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		LabelRevision: c,
		LabelSource:   "https://git.example.com/team/hello.git",
		LabelCreated:  commitTime.Format(time.RFC3339),
		LabelVersion:  c[:12],
	} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("pulled label %s = %q, want %q", k, got, want)
		}
	}
	if got := runImage(t, pulled); got != c {
		t.Errorf("pulled image: GET /version = %q, want %q", got, c)
	}

	cnt.reset()
	if d2, err := p.Push(ctx, img, long, short); err != nil || d2 != d {
		t.Fatalf("re-Push = %s, %v, want %s", d2, err, d)
	}
	if n := cnt.blobWrites(); n != 0 {
		t.Errorf("re-push of the same commit made %d blob writes, want 0:\n%s", n, cnt)
	}

	cnt.reset()
	if err := p.Tag(ctx, d, "latest"); err != nil {
		t.Fatalf("Tag(latest): %v", err)
	}
	if n := cnt.blobWrites(); n != 0 {
		t.Errorf("Tag made %d blob writes, want 0:\n%s", n, cnt)
	}
	if n := cnt.count("/manifests/", "PUT"); n != 1 {
		t.Errorf("Tag made %d manifest PUTs, want 1:\n%s", n, cnt)
	}
	if got, err := p.Resolve(ctx, "latest"); err != nil || got != d {
		t.Errorf("Resolve(latest) = %s, %v, want %s", got, err, d)
	}

	// The next commit shares the base layer: only its app layer and config
	// are uploaded.
	cnt.reset()
	next := buildHello(t, helloModule(t), commitN(31))
	if _, err := p.Push(ctx, next, ferry.CommitTag(commitN(31))); err != nil {
		t.Fatal(err)
	}
	if n := cnt.count("/blobs/uploads/", "POST"); n != 2 {
		t.Errorf("push of the next commit started %d blob uploads, want 2 (app layer, config):\n%s", n, cnt)
	}
	if _, err := p.Resolve(ctx, ferry.CommitTag(commitN(32))); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Resolve(unbuilt commit) = %v, want %s", err, ferry.ENOTFOUND)
	}
	if !strings.Contains(p.Ref(d), "@sha256:") {
		t.Errorf("Ref(%s) = %s", d, p.Ref(d))
	}
}
