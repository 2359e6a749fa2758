package registry_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/ferryhq/ferry/registry"
)

func start(t *testing.T, dir string) *registry.Server {
	t.Helper()
	s, err := registry.New(registry.Config{Dir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// auth is the registry's credentials, as ferry's publisher sends them.
func auth(s *registry.Server) remote.Option {
	user, password := s.Credentials()
	return remote.WithAuth(&authn.Basic{Username: user, Password: password})
}

func ref(t *testing.T, s *registry.Server, repoTag string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s.Host()+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func push(t *testing.T, s *registry.Server, repoTag string) v1.Hash {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, s, repoTag), img, auth(s)); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	want := push(t, s, "team/app:v1")
	secret, err := os.ReadFile(filepath.Join(dir, "http.secret"))
	if err != nil {
		t.Fatalf("secret not persisted: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if resp, err := http.Get("http://" + s.Addr() + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatal("closed registry still answers")
	}

	s2 := start(t, dir)
	desc, err := remote.Get(ref(t, s2, "team/app:v1"), auth(s2))
	if err != nil {
		t.Fatalf("tag after restart: %v", err)
	}
	if desc.Digest != want {
		t.Errorf("digest after restart = %s, want %s", desc.Digest, want)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("pulled image after restart is invalid: %v", err)
	}
	start := time.Now()
	if err := s2.Close(); err != nil {
		t.Errorf("Close after pulls: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close after pulls took %s, want it prompt", took)
	}
	secret2, err := os.ReadFile(filepath.Join(dir, "http.secret"))
	if err != nil || string(secret2) != string(secret) {
		t.Errorf("secret changed across restart (err %v)", err)
	}
}

func TestTwoServersInOneProcess(t *testing.T) {
	a := start(t, t.TempDir())
	b := start(t, t.TempDir())
	if a.Addr() == b.Addr() {
		t.Fatalf("both servers on %s", a.Addr())
	}
	push(t, a, "app:a")
	push(t, b, "app:b")
	if _, err := remote.Head(ref(t, a, "app:a"), auth(a)); err != nil {
		t.Errorf("a lost its image: %v", err)
	}
	_, err := remote.Head(ref(t, b, "app:a"), auth(b))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD app:a on b = %v, want 404", err)
	}
}

func TestDeleteEnabled(t *testing.T) {
	s := start(t, t.TempDir())
	d := push(t, s, "app:gone")
	byDigest := ref(t, s, "app@"+d.String())
	if err := remote.Delete(byDigest, auth(s)); err != nil {
		t.Fatalf("delete by digest: %v", err)
	}
	if _, err := remote.Head(byDigest, auth(s)); err == nil {
		t.Error("manifest still present after delete")
	}
}

func TestRefusesRemoteAddr(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:5050", ":5050", "192.0.2.10:5050", "example.com:5050", "[::]:5050"} {
		_, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: addr})
		if err == nil || !strings.Contains(err.Error(), "not loopback") {
			t.Errorf("New(Addr %q) = %v, want a not-loopback error", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0", "127.0.0.2:0"} {
		if _, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: addr}); err != nil {
			t.Errorf("New(Addr %q) = %v, want nil", addr, err)
		}
	}
	s, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: "0.0.0.0:5050", AllowRemote: true})
	if err != nil {
		t.Fatalf("New(AllowRemote) = %v", err)
	}
	if got := s.Host(); got != "127.0.0.1:5050" {
		t.Errorf("Host() = %q, want 127.0.0.1:5050", got)
	}
	if _, err := registry.New(registry.Config{Addr: "127.0.0.1:0"}); err == nil {
		t.Error("New without Dir succeeded")
	}
	if _, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: "nonsense"}); err == nil {
		t.Error("New(Addr nonsense) succeeded")
	}
}

func TestStartTwiceAndAfterClose(t *testing.T) {
	s := start(t, t.TempDir())
	if err := s.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	s.Close()
	if err := s.Start(context.Background()); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestPortInUse(t *testing.T) {
	a := start(t, t.TempDir())
	b, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err == nil {
		b.Close()
		t.Fatalf("Start on busy %s succeeded", a.Addr())
	}
}

// records keeps the slog records a server logs.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func TestLogsGoToSlog(t *testing.T) {
	rec := &records{}
	s, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0", Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := remote.Head(ref(t, s, "app:absent"), auth(s)); err == nil {
		t.Fatal("HEAD of an absent tag succeeded")
	}
	s.Close()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var sawMiss bool
	for _, r := range rec.recs {
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		if r.Message == "response completed with error" && strings.EqualFold(strings.ReplaceAll(attrs["err.code"], "_", " "), "manifest unknown") {
			sawMiss = true
			if r.Level != slog.LevelDebug {
				t.Errorf("a 404 was logged at %s, want DEBUG", r.Level)
			}
		}
		if r.Level >= slog.LevelWarn {
			t.Errorf("unexpected %s log: %s %v", r.Level, r.Message, attrs)
		}
	}
	if !sawMiss {
		t.Errorf("the unknown manifest was not logged through slog; got %d records", len(rec.recs))
	}
}

// TestRefusesWithoutCredentials tries every kind of request a replica or
// another local user could make, without credentials and with wrong ones:
// each is 401 and the registry is unchanged.
func TestRefusesWithoutCredentials(t *testing.T) {
	s := start(t, t.TempDir())
	want := push(t, s, "app:v1")
	planted, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := planted.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr()
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v2/", ""},
		{"GET", "/v2/_catalog", ""},
		{"GET", "/v2/app/tags/list", ""},
		{"GET", "/v2/app/manifests/v1", ""},
		{"HEAD", "/v2/app/manifests/" + want.String(), ""},
		{"POST", "/v2/app/blobs/uploads/", ""},
		{"PUT", "/v2/app/manifests/sha-" + strings.Repeat("a", 40), string(manifest)},
		{"PUT", "/v2/app/manifests/v1", string(manifest)},
		{"DELETE", "/v2/app/manifests/" + want.String(), ""},
	} {
		for _, who := range []struct {
			name, user, password string
		}{{"anonymous", "", ""}, {"wrong password", registry.User, "guess"}, {"other user", "root", "root"}} {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			if who.user != "" {
				req.SetBasicAuth(who.user, who.password)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s as %s = %d, want 401", tc.method, tc.path, who.name, resp.StatusCode)
			}
		}
	}
	desc, err := remote.Get(ref(t, s, "app:v1"), auth(s))
	if err != nil || desc.Digest != want {
		t.Fatalf("app:v1 after the refused requests = %v, %v; want %s unchanged", desc, err, want)
	}
	if _, err := remote.Head(ref(t, s, "app:sha-"+strings.Repeat("a", 40)), auth(s)); err == nil {
		t.Error("the planted tag exists")
	}
}

// TestCredentialsChangeAtRestart checks that a password seen once (say,
// leaked from a process that held it) stops working when the registry is
// made anew, and that only its hash is on disk.
func TestCredentialsChangeAtRestart(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	push(t, s, "app:v1")
	_, old := s.Credentials()
	s.Close()
	s2 := start(t, dir)
	if _, now := s2.Credentials(); now == old || len(now) < 64 {
		t.Fatalf("password after restart = %q (was %q), want a new 256-bit one", now, old)
	}
	stale := remote.WithAuth(&authn.Basic{Username: registry.User, Password: old})
	_, err := remote.Head(ref(t, s2, "app:v1"), stale)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("HEAD with the old password = %v, want 401", err)
	}
	if _, err := remote.Head(ref(t, s2, "app:v1"), auth(s2)); err != nil {
		t.Errorf("HEAD with the new password = %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "htpasswd"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("htpasswd = %v, %v; want mode 0600", fi, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "htpasswd"))
	_, now := s2.Credentials()
	if strings.Contains(string(b), now) || !strings.HasPrefix(string(b), registry.User+":$2") {
		t.Errorf("htpasswd = %q, want only a bcrypt hash of the password", b)
	}
}
