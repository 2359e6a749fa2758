package local

import (
	"archive/tar"
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestImageStoreUnpacksOnce(t *testing.T) {
	im := appImages(t)
	src := &countingSource{ImageSource: im.src}
	dir := t.TempDir()
	h, _ := v1.NewHash(im.v1)
	// What a crashed unpack leaves behind.
	stale := filepath.Join(dir, ".tmp-"+h.Hex+"-123")
	os.MkdirAll(filepath.Join(stale, rootfsDir, "half"), 0o755)

	s := &imageStore{dir: dir, src: src, log: slog.New(slog.DiscardHandler), now: time.Now}
	var wg sync.WaitGroup
	imgs := make([]*image, 4)
	errs := make([]error, 4)
	for i := range imgs {
		wg.Go(func() { imgs[i], errs[i] = s.get(t.Context(), im.v1) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if n := src.n.Load(); n != 1 {
		t.Errorf("pulled %d times, want once", n)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale unpack %s still there (%v)", stale, err)
	}
	img := imgs[0]
	if img.rootfs != filepath.Join(dir, h.Hex, rootfsDir) {
		t.Errorf("rootfs = %s, want under %s", img.rootfs, dir)
	}
	if !slices.Equal(img.config.Entrypoint, []string{"/app/app"}) || img.config.WorkingDir != "/app" || !slices.Contains(img.config.Env, "VERSION=v1") {
		t.Errorf("config = %+v, want the app's entrypoint, working directory and environment", img.config)
	}
	for _, p := range []string{"app/app", "etc/passwd", "data", "tmp"} {
		if _, err := os.Lstat(filepath.Join(img.rootfs, p)); err != nil {
			t.Errorf("rootfs lacks %s: %v", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(img.rootfs, "tmp")); err == nil && fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp mode %v, want sticky", fi.Mode())
	}
	// A second store on the same directory finds it without pulling.
	s2 := &imageStore{dir: dir, src: src, log: slog.New(slog.DiscardHandler), now: time.Now}
	if _, err := s2.get(t.Context(), im.v1); err != nil || src.n.Load() != 1 {
		t.Errorf("second get: %v, %d pulls, want none more", err, src.n.Load())
	}
	if _, err := s.get(t.Context(), "sha256:"+string(bytes.Repeat([]byte("0"), 64))); err == nil {
		t.Errorf("get of a missing digest = nil error")
	}
	if _, err := os.Stat(filepath.Join(dir, string(bytes.Repeat([]byte("0"), 64)))); !os.IsNotExist(err) {
		t.Errorf("a failed pull left a directory (%v)", err)
	}
}

// tarOf builds a tar stream of headers, each regular file with its name as
// content.
func tarOf(t *testing.T, hdrs ...tar.Header) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(h.Name))
		}
	}
	tw.Close()
	return &b
}

func TestExtractStaysInside(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdrs []tar.Header
	}{
		{"dot-dot entry", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}}},
		{"absolute symlink", []tar.Header{
			{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "/outside"},
			{Name: "esc/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		}},
		{"relative symlink", []tar.Header{
			{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "../outside"},
			{Name: "esc/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		}},
		{"symlinked file", []tar.Header{
			{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "../outside/evil"},
			{Name: "evil", Typeflag: tar.TypeReg, Mode: 0o644},
		}},
		{"hard link out", []tar.Header{{Name: "evil", Typeflag: tar.TypeLink, Linkname: "../outside/evil"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			rootfs := filepath.Join(base, "rootfs")
			outside := filepath.Join(base, "outside")
			os.Mkdir(rootfs, 0o755)
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "evil"), []byte("keep"), 0o644)
			extract(context.Background(), rootfs, tarOf(t, tc.hdrs...))
			if b, _ := os.ReadFile(filepath.Join(outside, "evil")); string(b) != "keep" {
				t.Errorf("outside/evil = %q: the archive wrote outside the root", b)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 1 {
				t.Errorf("outside holds %d entries, want 1", len(entries))
			}
			if _, err := os.Stat(filepath.Join(base, "evil")); err == nil {
				t.Errorf("the archive wrote next to the root")
			}
		})
	}
}

func TestExtractModes(t *testing.T) {
	rootfs := t.TempDir()
	err := extract(context.Background(), rootfs, tarOf(t,
		tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o555},
		tar.Header{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755},
		tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "/bin/su"},
		tar.Header{Name: "bin/ln", Typeflag: tar.TypeLink, Linkname: "bin/su"},
		tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
	))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(rootfs, "bin/su"))
	if err != nil || fi.Mode() != 0o755 {
		t.Errorf("bin/su mode = %v (%v), want 0755 without set-user-ID", fi.Mode(), err)
	}
	if fi, _ := os.Stat(filepath.Join(rootfs, "bin")); fi.Mode().Perm() != 0o555 {
		t.Errorf("bin mode = %v, want 0555", fi.Mode())
	}
	if l, _ := os.Readlink(filepath.Join(rootfs, "bin/sh")); l != "/bin/su" {
		t.Errorf("bin/sh -> %q, want /bin/su", l)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "bin/ln")); string(b) != "bin/su" {
		t.Errorf("bin/ln holds %q, want bin/su's content", b)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "dev/null")); err == nil {
		t.Errorf("a device node was created")
	}
}

// TestImageStoreUnpacksAgainWhatLostItsEntrypoint: an unpacked image whose
// entrypoint has gone is incomplete: the next get unpacks it again rather
// than hand replicas an image they cannot start.
func TestImageStoreUnpacksAgainWhatLostItsEntrypoint(t *testing.T) {
	im := appImages(t)
	src := &countingSource{ImageSource: im.src}
	s := &imageStore{dir: t.TempDir(), src: src, log: slog.New(slog.DiscardHandler), now: time.Now}
	img, err := s.get(t.Context(), im.v1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(img.rootfs, "app/app")); err != nil {
		t.Fatal(err)
	}
	img, err = s.get(t.Context(), im.v1)
	if err != nil {
		t.Fatalf("get after the entrypoint went: %v", err)
	}
	if _, err := os.Stat(filepath.Join(img.rootfs, "app/app")); err != nil {
		t.Errorf("the entrypoint is still missing: %v", err)
	}
	if n := src.n.Load(); n != 2 {
		t.Errorf("pulled %d times, want twice (once again for the incomplete image)", n)
	}
}
