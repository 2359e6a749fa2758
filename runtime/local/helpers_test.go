package local

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/lb"
	"github.com/ferryhq/ferry/oci"
)

func TestMain(m *testing.M) {
	if os.Getenv(orphanEnv) != "" {
		orphanMain()
		return
	}
	if os.Getenv(hostAttackEnv) != "" {
		hostAttackMain()
		return
	}
	code := m.Run()
	if registrySrv != nil {
		registrySrv.Close()
	}
	os.Exit(code)
}

// images are the test app's image variants, pushed to an in-memory
// registry: one go build, then each variant sets the environment the app
// reads at start, which gives it its own digest.
type images struct {
	src ImageSource
	// v1 and v2 serve "v1" and "v2" on /version; crash exits at start;
	// never is never ready; stubborn ignores SIGTERM; missing has no
	// entrypoint binary; bad answers 500 to every 4th /version.
	v1, v2, crash, never, stubborn, missing, bad string
}

var (
	imagesOnce  sync.Once
	testImages  images
	imagesErr   error
	registrySrv *httptest.Server
)

// testImages builds and pushes the test app's images once per test binary.
func appImages(t testing.TB) images {
	t.Helper()
	imagesOnce.Do(func() { testImages, imagesErr = buildImages() })
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return testImages
}

func buildImages() (images, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := filepath.Abs("testdata/app")
	if err != nil {
		return images{}, err
	}
	var out strings.Builder
	base, err := oci.BuildGo(ctx, oci.GoBuild{Dir: dir, Env: []string{"GOWORK=off"}, Commit: commit(0)}, &out)
	if err != nil {
		return images{}, fmt.Errorf("build test app: %v\n%s", err, out.String())
	}
	registrySrv = httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	host := strings.TrimPrefix(registrySrv.URL, "http://")
	pub, err := oci.NewPublisher(host+"/app", oci.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		return images{}, err
	}
	push := func(env ...string) (string, error) {
		cf, err := base.ConfigFile()
		if err != nil {
			return "", err
		}
		cf = cf.DeepCopy()
		cf.Config.Env = append(cf.Config.Env, env...)
		if slices.Contains(env, "MISSING=1") {
			cf.Config.Entrypoint = []string{"/app/missing"}
		}
		img, err := mutate.ConfigFile(base, cf)
		if err != nil {
			return "", err
		}
		return pub.Push(ctx, img)
	}
	im := images{src: pub}
	for _, v := range []struct {
		d   *string
		env []string
	}{
		{&im.v1, []string{"VERSION=v1"}},
		{&im.v2, []string{"VERSION=v2"}},
		{&im.crash, []string{"VERSION=crash", "CRASH=1"}},
		{&im.never, []string{"VERSION=never", "READY=never"}},
		{&im.stubborn, []string{"VERSION=stubborn", "IGNORE_TERM=1"}},
		{&im.missing, []string{"MISSING=1"}},
		{&im.bad, []string{"VERSION=bad", "FAIL_EVERY=4"}},
	} {
		if *v.d, err = push(v.env...); err != nil {
			return images{}, err
		}
	}
	return im, nil
}

// commit returns a distinct 40-hex commit id.
func commit(n int) string { return fmt.Sprintf("%040x", 0xc0ffee00+n) }

// testLogger writes the runtime's log to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// logTo makes a target's own log (the runtime's, not its replicas') go
// to buf as well as the test's log.
func logTo(t testing.TB, buf *syncBuffer) func(*Config) {
	return func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(buf, tlogWriter{t}), nil)) }
}

// newTarget returns a started Runtime for environment "dev" on a free port,
// closed when the test ends.
func newTarget(t testing.TB, im images, edit ...func(*Config)) *Runtime {
	t.Helper()
	cfg := Config{
		Env:       "dev",
		DataDir:   t.TempDir(),
		Listen:    "127.0.0.1:0",
		Readiness: "/statusz",
		PortEnv:   "PORT",
		Images:    im.src,
		Logger:    testLogger(t),
		Balancer:  lb.Config{CheckInterval: 50 * time.Millisecond, DrainTimeout: 5 * time.Second},
	}
	for _, e := range edit {
		e(&cfg)
	}
	tg, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		tg.Close(ctx)
	})
	return tg
}

// spec is a spec of digest with n replicas and test-sized rollout bounds.
func spec(digest string, n int) ferry.Spec {
	return ferry.Spec{
		Env: "dev", Commit: commit(1), Image: "app", Digest: digest, Replicas: n,
		Rollout: ferry.Rollout{ReadyTimeout: 15 * time.Second, Grace: 3 * time.Second},
	}
}

// apply applies s and fails the test on error.
func apply(t testing.TB, tg *Runtime, s ferry.Spec) {
	t.Helper()
	if err := tg.Apply(t.Context(), s, nil); err != nil {
		t.Fatalf("Apply(%s×%d): %v", ferry.ShortDigest(s.Digest), s.Replicas, err)
	}
}

// get GETs path through the balancer and returns the trimmed body.
func get(t testing.TB, tg *Runtime, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + tg.Addr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// load sends GET /version through the balancer from a few goroutines,
// each pausing briefly between requests, until stopped.
type load struct{ *loadtest.Load }

func startLoad(tg *Runtime, workers int) load {
	return load{loadtest.Start(loadtest.Config{
		Workers: workers, URL: "http://" + tg.Addr() + "/version", Pause: time.Millisecond,
		Key: func(_ *http.Response, body []byte) string { return strings.TrimSpace(string(body)) },
	})}
}

// stop ends the load and fails the test on any failed request; it returns
// how often each version answered.
func (l load) stop(t testing.TB) map[string]int {
	t.Helper()
	// Under load the workers may not have sent a request yet when what
	// they watch was quick: give them one answer's time first.
	for deadline := time.Now().Add(10 * time.Second); l.OK()+l.Failed() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	l.Stop()
	versions := l.Served(time.Time{})
	t.Logf("load: %d ok, %d failed, versions %v", l.OK(), l.Failed(), versions)
	if n := l.Failed(); n > 0 {
		t.Errorf("%d failed requests, want 0; first: %q", n, l.Errors())
	}
	if l.OK() == 0 {
		t.Errorf("no request succeeded")
	}
	return versions
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// status returns the target's status, failing the test on error.
func status(t testing.TB, tg *Runtime) ferry.Status {
	t.Helper()
	st, err := tg.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// pids returns the pids of the replicas' processes.
func pids(tg *Runtime) []int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	var out []int
	for _, r := range tg.replicas {
		if s := r.snapshot(); s.pid != 0 {
			out = append(out, s.pid)
		}
	}
	return out
}

// countingSource counts the images pulled through it.
type countingSource struct {
	ImageSource
	n atomic.Int64
}

func (c *countingSource) Image(ctx context.Context, digest string) (v1.Image, error) {
	c.n.Add(1)
	return c.ImageSource.Image(ctx, digest)
}
