package cosign_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/cosign"
	"github.com/ferryhq/ferry/oci"
	"github.com/ferryhq/ferry/registry"
)

// embedded starts ferry's embedded registry (credentials required) on a
// free loopback port and returns a publisher for repo in it, with the
// registry's credentials.
func embedded(t testing.TB, repo string, opts ...oci.Option) (*oci.Publisher, *registry.Server) {
	t.Helper()
	reg, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	user, password := reg.Credentials()
	pub, err := oci.NewPublisher(reg.Host()+"/"+repo, append([]oci.Option{oci.WithBasicAuth(user, password)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return pub, reg
}

// pushRandom pushes a small random image and returns its digest.
func pushRandom(t testing.TB, pub *oci.Publisher) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := pub.Push(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func commitN(n int) string { return fmt.Sprintf("%040x", 0xc0ffee00+n) }

// provenance is what a build of commit would attest.
func provenance(pub *oci.Publisher, commit string) ferry.Provenance {
	start := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	return ferry.Provenance{
		App: "tiny", BuildID: 7, Commit: commit, Branch: "main",
		Source: "file:///srv/git/tiny.git", Image: pub.Repo(),
		Test: "go test ./...", TestResult: ferry.TestPassed,
		Builder: "https://github.com/ferryhq/ferry@test", Started: start, Finished: start.Add(3 * time.Second),
	}
}

func newKey(t testing.TB) *cosign.Key {
	t.Helper()
	k, err := cosign.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func wantRefusal(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("Verify = %v, want nil", err)
	case want != "" && err == nil:
		t.Errorf("Verify = nil, want a refusal containing %q", want)
	case want != "" && (ferry.ErrorCode(err) != ferry.EFORBIDDEN || !strings.Contains(ferry.ErrorMessage(err), want)):
		t.Errorf("Verify = %v (code %s), want %s containing %q", err, ferry.ErrorCode(err), ferry.EFORBIDDEN, want)
	}
}

// counting counts the HTTP requests sent to the registry.
type counting struct{ n atomic.Int64 }

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}
