package local

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryhq/ferry/internal/testenv"
)

// requireRunc skips the test unless ferry's tests run as root with runc
// installed, and fails it when FERRY_TEST_REQUIRE lists "root" or "runc".
func requireRunc(t testing.TB) {
	t.Helper()
	if !isRoot() {
		testenv.Unavailable(t, "root", "contained replicas need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		testenv.Unavailable(t, "runc", "contained replicas need runc (apt-get install runc): %v", err)
	}
}

func TestContained(t *testing.T) {
	requireRunc(t)
	im := appImages(t)
	src := &countingSource{ImageSource: im.src}
	dataDir := t.TempDir()
	dev := newTarget(t, im, func(c *Config) { c.Images, c.DataDir = src, dataDir })
	prod := newTarget(t, im, func(c *Config) { c.Env, c.Images, c.DataDir = "prod", src, dataDir })
	if !dev.Sandboxed() || !prod.Sandboxed() {
		t.Fatal("running as root, replicas are not contained under runc")
	}

	// Both environments at once: the image is pulled and unpacked once.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, tg := range []*Runtime{dev, prod} {
		wg.Go(func() {
			s := spec(im.v1, 1)
			s.Env = tg.cfg.Env
			errs[i] = tg.Apply(t.Context(), s, nil)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := src.n.Load(); n != 1 {
		t.Errorf("image pulled %d times for two environments, want once", n)
	}

	devID, prodID := dev.rc.uid, prod.rc.uid
	if devID == prodID || devID < idBase || prodID < idBase {
		t.Errorf("dev runs as %d, prod as %d: want two uids from %d", devID, prodID, idBase)
	}
	if _, body := get(t, dev, "/whoami"); body != fmt.Sprintf("%d %d /data", devID, devID) {
		t.Errorf("GET /whoami = %q, want uid and gid %d in /data", body, devID)
	}
	// The host's files are not there.
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/shadow", secret} {
		if code, body := get(t, dev, "/read?path="+p); code != 403 || !strings.Contains(body, "no such file") {
			t.Errorf("GET /read?path=%s = %d %q, want 403 no such file", p, code, body)
		}
	}
	// The image's own files are.
	if code, body := get(t, dev, "/read?path=/etc/passwd"); code != 200 || !strings.Contains(body, "root:x:0") {
		t.Errorf("GET /read?path=/etc/passwd = %d %q, want the image's passwd", code, body)
	}

	// Each environment has its own /data.
	if code, body := get(t, dev, "/write?name=dev-note"); code != 200 || body != "/data/dev-note" {
		t.Fatalf("dev GET /write = %d %q", code, body)
	}
	if code, body := get(t, prod, "/write?name=prod-note"); code != 200 {
		t.Fatalf("prod GET /write = %d %q", code, body)
	}
	devNote := filepath.Join(dev.dataDir, "dev-note")
	fi, err := os.Stat(devNote)
	if err != nil {
		t.Fatalf("dev's note is not in dev's data directory: %v", err)
	}
	if owner(fi) != devID {
		t.Errorf("dev's note is owned by %d, want %d", owner(fi), devID)
	}
	if _, err := os.Stat(filepath.Join(prod.dataDir, "dev-note")); err == nil {
		t.Errorf("dev's note is in prod's data directory")
	}
	if _, err := os.Stat(filepath.Join(prod.dataDir, "prod-note")); err != nil {
		t.Errorf("prod's note is not in prod's data directory: %v", err)
	}
	if code, _ := get(t, prod, "/read?path=/data/dev-note"); code != 403 {
		t.Errorf("prod reads dev's note: status %d, want 403", code)
	}
	// /tmp is each replica's own; the shared image is read-only; /dev
	// holds the harmless devices.
	if code, body := get(t, dev, "/write?name=scratch&dir=/tmp"); code != 200 {
		t.Errorf("dev GET /write?dir=/tmp = %d %q, want 200", code, body)
	}
	if code, _ := get(t, prod, "/read?path=/tmp/scratch"); code != 403 {
		t.Errorf("prod reads dev's /tmp/scratch: status %d, want 403", code)
	}
	for _, dir := range []string{"/app", "/home/nonroot", "/"} {
		// /home/nonroot is the image's uid 65532's, not dev's.
		if code, body := get(t, dev, "/write?name=x&dir="+dir); code != 500 || !strings.Contains(body, "read-only file system") && !strings.Contains(body, "permission denied") {
			t.Errorf("GET /write?dir=%s = %d %q, want 500 read-only file system or permission denied", dir, code, body)
		}
	}
	if code, body := get(t, dev, "/read?path=/dev/zero"); code != 200 || body != strings.Repeat("\x00", 64) {
		t.Errorf("GET /read?path=/dev/zero = %d %q, want 64 zero bytes", code, body)
	}
	if code, body := get(t, dev, "/read?path=/etc/hosts"); code != 200 || !strings.Contains(body, "localhost") {
		t.Errorf("GET /read?path=/etc/hosts = %d %q, want the host's", code, body)
	}
	for _, p := range []string{"/dev/sda", "/dev/mem", "/dev/kmsg"} {
		if code, _ := get(t, dev, "/read?path="+p); code != 403 {
			t.Errorf("GET /read?path=%s = %d, want 403", p, code)
		}
	}
	h, _ := v1.NewHash(im.v1)
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "images", h.Hex, rootfsDir, "tmp")); len(entries) != 0 {
		t.Errorf("the shared image's /tmp holds %d entries, want none", len(entries))
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "images", h.Hex, rootfsDir, "data")); len(entries) != 0 {
		t.Errorf("the shared image's /data holds %d entries, want none", len(entries))
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dataDir) {
		t.Errorf("a replica's mount is visible to ferry")
	}

	// /data outlives a new digest.
	s := spec(im.v2, 1)
	apply(t, dev, s)
	if code, body := get(t, dev, "/read?path=/data/dev-note"); code != 200 || body != "v1" {
		t.Errorf("after the rollout, GET /read?path=/data/dev-note = %d %q, want v1", code, body)
	}
}

func TestPlainProcesses(t *testing.T) {
	im := appImages(t)
	var logged strings.Builder
	var mu sync.Mutex
	tg := newTarget(t, im, func(c *Config) {
		c.NoSandbox = true
		c.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))
	})
	if tg.Sandboxed() {
		t.Fatal("NoSandbox: replicas are sandboxed")
	}
	mu.Lock()
	warning := logged.String()
	mu.Unlock()
	for _, missing := range []string{"level=WARN", "user", "filesystem", "process namespace", "seccomp", "memory, CPU or process limit"} {
		if !strings.Contains(warning, missing) {
			t.Errorf("New logged %q, want a warning naming %q", warning, missing)
		}
	}
	apply(t, tg, spec(im.v1, 1))
	want := fmt.Sprintf("%d %d %s", os.Getuid(), os.Getgid(), tg.dataDir)
	if _, body := get(t, tg, "/whoami"); body != want {
		t.Errorf("GET /whoami = %q, want %q (ferry's user, in the data directory)", body, want)
	}
	if code, body := get(t, tg, "/write?name=note&dir=."); code != 200 {
		t.Fatalf("GET /write = %d %q", code, body)
	}
	if _, err := os.Stat(filepath.Join(tg.dataDir, "note")); err != nil {
		t.Errorf("note not in the data directory: %v", err)
	}
	// No isolation: the host's files are visible.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("host secret"), 0o644)
	if code, body := get(t, tg, "/read?path="+secret); code != 200 || body != "host secret" {
		t.Errorf("GET /read?path=%s = %d %q, want the host file", secret, code, body)
	}
}

func TestMissingEntrypointFailsFast(t *testing.T) {
	im := appImages(t)
	for _, noSandbox := range []bool{false, true} {
		t.Run(fmt.Sprintf("sandbox=%v", !noSandbox && isRoot()), func(t *testing.T) {
			tg := newTarget(t, im, func(c *Config) { c.NoSandbox = noSandbox })
			err := tg.Apply(t.Context(), spec(im.missing, 1), nil)
			re, ok := errors.AsType[*ReplicaError](err)
			if !ok || !strings.Contains(re.Reason, "crash-looping") || !strings.Contains(re.Error(), "/app/missing") {
				t.Fatalf("Apply(missing entrypoint) = %v, want crash-looping naming /app/missing", err)
			}
			t.Log(err)
		})
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
