package local

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ferryhq/ferry"
)

// ImageSource pulls images by manifest digest. *oci.Publisher satisfies it.
type ImageSource interface {
	Image(ctx context.Context, digest string) (v1.Image, error)
}

// image is an unpacked image: its root filesystem and what its config says
// to run.
type image struct {
	digest string
	rootfs string // absolute
	config v1.Config
}

// Layout of an unpacked image, DataDir/images/<hex>/.
const (
	rootfsDir  = "rootfs"
	configFile = "config.json"
	// dataMount is where the environment's data directory appears inside
	// a contained replica.
	dataMount = "/data"
)

// imageStore keeps unpacked images in dir, one directory per digest,
// shared by every environment.
type imageStore struct {
	dir string
	src ImageSource
	log *slog.Logger
	now func() time.Time
}

// get returns the image with digest, pulling it and unpacking its
// filesystem into dir/<hex> unless it is there already. The filesystem is
// extracted into a temporary directory that is renamed into place at the
// end, so a crash never leaves a half-unpacked image; a lock file makes
// concurrent callers, in this process or another, unpack it once.
func (s *imageStore) get(ctx context.Context, digest string) (*image, error) {
	dir := s.dir
	h, err := v1.NewHash(digest)
	if err != nil || h.Algorithm != "sha256" {
		return nil, ferry.Errorf(ferry.EINVALID, "image digest %q: want sha256:<64 hex>", digest)
	}
	final := filepath.Join(dir, h.Hex)
	cached, err := loadUnpacked(final, digest)
	if err == nil {
		return cached, nil
	}
	if _, serr := os.Lstat(final); serr == nil {
		// There, but not whole: say so, and unpack it again below.
		s.log.Warn("unpacked image is incomplete", "digest", digest, "dir", final, "err", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("unpack %s: %w", digest, err)
	}
	unlock, err := lockFile(ctx, final+".lock")
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", digest, err)
	}
	defer unlock()
	// Another caller may have unpacked it while we waited for the lock.
	unpacked, err := loadUnpacked(final, digest)
	switch {
	case err == nil:
		return unpacked, nil
	case !errors.Is(err, fs.ErrNotExist) && isPathError(err):
		// Replicas may be running on it: never remove an image for a
		// failure to read it that says nothing about the image (too many
		// open files, say). A missing or unreadable config means it is
		// incomplete.
		return nil, fmt.Errorf("unpack %s: %w", digest, err)
	}
	// Whatever is left under the lock is from a crashed unpack.
	stale, _ := filepath.Glob(filepath.Join(dir, ".tmp-"+h.Hex+"-*"))
	for _, s := range stale {
		os.RemoveAll(s)
	}
	if _, serr := os.Lstat(final); serr == nil {
		s.log.Warn("removing an incomplete unpacked image", "digest", digest, "dir", final, "err", err)
		os.RemoveAll(final)
	}

	start := s.now()
	img, err := s.src.Image(ctx, digest)
	if err != nil {
		return nil, err
	}
	if got, err := img.Digest(); err != nil || got != h {
		return nil, fmt.Errorf("unpack %s: registry returned image %v (%v)", digest, got, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("unpack %s: config: %w", digest, err)
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-"+h.Hex+"-")
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", digest, err)
	}
	if err := fill(ctx, tmp, img, cf); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("unpack %s: %w", digest, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("unpack %s: %w", digest, err)
	}
	s.log.Info("image unpacked", "digest", digest, "dir", final, "took", s.now().Sub(start).Round(time.Millisecond))
	return loadImage(final, digest)
}

// fill writes an image's filesystem and config into the empty directory
// tmp.
func fill(ctx context.Context, tmp string, img v1.Image, cf *v1.ConfigFile) error {
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	rootfs := filepath.Join(tmp, rootfsDir)
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	if err := extract(ctx, rootfs, rc); err != nil {
		return err
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := mountPoints(root, cf.Config.WorkingDir); err != nil {
		return err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return os.WriteFile(filepath.Join(tmp, configFile), raw, 0o644)
}

// Mount points a contained replica needs in the image (see runc.spec):
// directories for the environment's data, a private /tmp, a minimal /dev
// and its own /proc, and files for the host's name resolution. They are
// made when the image is unpacked, as the image is read-only to runc.
var (
	mountDirs  = []string{dataMount, "/tmp", "/dev", "/proc"}
	mountFiles = []string{"/etc/hosts", "/etc/resolv.conf"}
)

// mountPoints creates the mount points, and the working directory, which a
// container runtime would create too, replacing whatever else is there.
func mountPoints(root *os.Root, workDir string) error {
	for _, d := range append(slices.Clone(mountDirs), workDir) {
		if d = strings.TrimPrefix(path.Clean("/"+d), "/"); d == "" {
			continue
		}
		if fi, err := root.Lstat(d); err == nil && !fi.IsDir() {
			if err := root.Remove(d); err != nil {
				return fmt.Errorf("/%s: %w", d, err)
			}
		}
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("/%s: %w", d, err)
		}
	}
	for _, f := range mountFiles {
		f = strings.TrimPrefix(f, "/")
		if fi, err := root.Lstat(f); err == nil {
			if fi.Mode().IsRegular() {
				continue
			}
			// A symbolic link (to ../run/…) would be followed by the
			// mount; a directory cannot take a file.
			if err := root.RemoveAll(f); err != nil {
				return fmt.Errorf("/%s: %w", f, err)
			}
		}
		if err := root.MkdirAll(path.Dir(f), 0o755); err != nil {
			return fmt.Errorf("/%s: %w", f, err)
		}
		if err := root.WriteFile(f, nil, 0o644); err != nil {
			return fmt.Errorf("/%s: %w", f, err)
		}
	}
	return nil
}

func isPathError(err error) bool {
	_, ok := errors.AsType[*fs.PathError](err)
	return ok
}

// loadImage reads an unpacked image.
func loadImage(dir, digest string) (*image, error) {
	raw, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", digest, err)
	}
	return &image{digest: digest, rootfs: filepath.Join(dir, rootfsDir), config: cf.Config}, nil
}

// loadUnpacked is loadImage of an image unpacked earlier, which must still
// have its absolute entrypoint: one that lost it is incomplete, and is
// unpacked again. (A fresh unpack without it is the image's own fault:
// its replicas fail to start, naming it.)
func loadUnpacked(dir, digest string) (*image, error) {
	img, err := loadImage(dir, digest)
	if err != nil {
		return nil, err
	}
	if ep := img.config.Entrypoint; len(ep) > 0 && path.IsAbs(ep[0]) {
		if _, err := os.Lstat(filepath.Join(img.rootfs, filepath.FromSlash(ep[0]))); err != nil {
			return nil, fmt.Errorf("image %s: its entrypoint %s is not in its filesystem: %w", digest, ep[0], err)
		}
	}
	return img, nil
}

// extract writes the flattened filesystem tar r under dir. Every path is
// resolved inside dir (os.Root), so no entry or symbolic link can write
// outside it. Owners are kept when running as root; set-user-ID and
// set-group-ID bits are dropped; device nodes and FIFOs are skipped.
func extract(ctx context.Context, dir string, r io.Reader) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	chown := os.Geteuid() == 0
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read layers: %w", err)
		}
		name, ok := entryName(hdr.Name)
		if !ok {
			return fmt.Errorf("layer entry %q: path outside the image", hdr.Name)
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		if hdr.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		if name != "." {
			if d := path.Dir(name); d != "." {
				if err := root.MkdirAll(d, 0o755); err != nil {
					return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
				}
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
				root.Remove(name)
			}
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
			}
			dirs = append(dirs, dirMode{name, mode})
		case tar.TypeReg:
			removeNonDir(root, name)
			f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = root.Chmod(name, mode)
			}
			if err != nil {
				return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			removeNonDir(root, name)
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
			}
		case tar.TypeLink:
			target, ok := entryName(hdr.Linkname)
			if !ok {
				return fmt.Errorf("layer entry %q: link to %q outside the image", hdr.Name, hdr.Linkname)
			}
			removeNonDir(root, name)
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
			}
		default:
			// Devices, FIFOs: a replica gets none.
			continue
		}
		if chown {
			if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
				return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
			}
		}
	}
	// Directory modes last, so that a read-only directory was writable
	// while its entries were extracted.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].name, dirs[i].mode); err != nil {
			return fmt.Errorf("layer entry %q: %w", dirs[i].name, err)
		}
	}
	return nil
}

// entryName cleans a tar entry name into a path relative to the image
// root; ok is false when it climbs out.
func entryName(name string) (string, bool) {
	clean := path.Clean("/" + name)
	rel := strings.TrimPrefix(clean, "/")
	if rel == "" {
		return ".", true
	}
	// path.Clean of an absolute path never keeps "..", but a raw ".."
	// element means the archive meant to climb out.
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", false
		}
	}
	return rel, true
}

// removeNonDir removes name unless it is a directory, so that an entry
// replaces what an earlier one left there.
func removeNonDir(root *os.Root, name string) {
	if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
		root.Remove(name)
	}
}

// Unpack pulls the image with digest from src and unpacks it under
// dataDir/images, as Apply does, unless it is there already: a process
// that has the registry's credentials (ferry serve) prepares the images
// that a runtime without them (one in the node, with an ImageSource that
// pulls nothing) then runs.
func Unpack(ctx context.Context, dataDir string, src ImageSource, digest string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &imageStore{dir: filepath.Join(dataDir, "images"), src: src, log: log, now: time.Now}
	_, err := s.get(ctx, digest)
	return err
}
