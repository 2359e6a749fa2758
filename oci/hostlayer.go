package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// HostPath is a file, directory or symbolic link of this machine to copy
// into an image.
type HostPath struct {
	// Host is the absolute path on this machine. A directory is copied
	// whole; a symbolic link as a link, together with what it names.
	Host string
	// Image is where it goes in the image; Host when empty.
	Image string
	// Skip, when set, leaves out the entries of a directory it reports,
	// by their path relative to Host (slash-separated); a skipped
	// directory is left out whole.
	Skip func(rel string) bool
}

// HostLayer is a layer of files copied from this machine: modes and
// symbolic links kept, hard links kept as links, owners root, timestamps
// the epoch, every directory on the way included, entries sorted. The same
// files give the same digest, wherever and whenever it is built.
// Directories that are symbolic links on the host (a merged /usr's /lib)
// appear as the links they are, so the image has the host's layout.
func HostLayer(paths []HostPath) (v1.Layer, error) {
	c := &collector{entries: map[string]*tar.Header{}, data: map[string]string{}, inodes: map[[2]uint64][]string{}}
	for _, p := range paths {
		if !filepath.IsAbs(p.Host) {
			return nil, fmt.Errorf("host path %q: want an absolute path", p.Host)
		}
		image := p.Image
		if image == "" {
			image = p.Host
		}
		if err := c.add(p.Host, path.Clean("/"+filepath.ToSlash(image)), p.Skip, ""); err != nil {
			return nil, err
		}
	}
	return c.layer()
}

type collector struct {
	entries map[string]*tar.Header // image path without leading "/" → header
	data    map[string]string      // image path → host file with the content
	inodes  map[[2]uint64][]string // (device, inode) → its image paths, for hard links
}

// add copies host to image (absolute, slash-separated).
func (c *collector) add(host, image string, skip func(string) bool, rel string) error {
	if host == filepath.FromSlash(image) {
		// The host's layout: a path through a directory link (/lib on a
		// merged /usr) lands where the link leads, and the link comes too.
		dir := filepath.Dir(host)
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return fmt.Errorf("host layer: %w", err)
		}
		if real != dir {
			if err := c.dirLinks(dir); err != nil {
				return err
			}
			host = filepath.Join(real, filepath.Base(host))
			image = filepath.ToSlash(host)
		}
	}
	c.dirs(path.Dir(image))
	fi, err := os.Lstat(host)
	if err != nil {
		return fmt.Errorf("host layer: %w", err)
	}
	name := strings.TrimPrefix(image, "/")
	h := &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), ModTime: time.Unix(0, 0)}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(host)
		if err != nil {
			return fmt.Errorf("host layer: %w", err)
		}
		h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, target, 0o777
		c.entries[name] = h
		// What it names comes too, where the image's link leads.
		hostTarget, imageTarget := target, target
		if !filepath.IsAbs(target) {
			hostTarget = filepath.Join(filepath.Dir(host), target)
			imageTarget = path.Join(path.Dir(image), filepath.ToSlash(target))
		}
		imageTarget = path.Clean(imageTarget)
		if _, err := os.Stat(hostTarget); err != nil {
			return fmt.Errorf("host layer: %s names %s: %w", host, target, err)
		}
		if _, ok := c.entries[strings.TrimPrefix(imageTarget, "/")]; ok {
			return nil
		}
		return c.add(filepath.Clean(hostTarget), imageTarget, skip, rel)
	case fi.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, name+"/"
		c.entries[name] = h
		ents, err := os.ReadDir(host)
		if err != nil {
			return fmt.Errorf("host layer: %w", err)
		}
		for _, e := range ents {
			r := path.Join(rel, e.Name())
			if skip != nil && skip(r) {
				continue
			}
			if err := c.add(filepath.Join(host, e.Name()), path.Join(image, e.Name()), skip, r); err != nil {
				return err
			}
		}
		return nil
	case fi.Mode().IsRegular():
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if !slices.Contains(c.inodes[key], name) {
				c.inodes[key] = append(c.inodes[key], name)
			}
		}
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		c.entries[name] = h
		c.data[name] = host
		return nil
	}
	return nil // sockets, devices, FIFOs: not image content
}

// dirLinks adds each directory link on the way to dir (itself included),
// as a link, and the directory it leads to, without its content.
func (c *collector) dirLinks(dir string) error {
	if dir == "/" || dir == "." {
		return nil
	}
	if err := c.dirLinks(filepath.Dir(dir)); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return err
	}
	target, err := os.Readlink(dir)
	if err != nil {
		return fmt.Errorf("host layer: %w", err)
	}
	name := strings.TrimPrefix(filepath.ToSlash(dir), "/")
	c.entries[name] = &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: time.Unix(0, 0)}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("host layer: %w", err)
	}
	c.dirs(filepath.ToSlash(real))
	return nil
}

// dirs adds dir and the directories leading to it, as plain directories
// (mode 0755), where nothing is there yet.
func (c *collector) dirs(dir string) {
	for dir != "/" && dir != "." {
		name := strings.TrimPrefix(dir, "/")
		if _, ok := c.entries[name]; ok {
			return
		}
		c.entries[name] = &tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}
		dir = path.Dir(dir)
	}
}

func (c *collector) layer() (v1.Layer, error) {
	// Of the names of one inode, the first in the archive's order holds
	// the content and the others link to it (a hard link must follow its
	// target).
	for _, group := range c.inodes {
		slices.Sort(group)
		for _, n := range group[1:] {
			h := c.entries[n]
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, group[0], 0
			delete(c.data, n)
		}
	}
	names := make([]string, 0, len(c.entries))
	for n := range c.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	var gzBuf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gzBuf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, n := range names {
		h := c.entries[n]
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("host layer: %s: %w", n, err)
		}
		if src, ok := c.data[n]; ok {
			if err := copyFile(tw, src, h.Size); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	blob := gzBuf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("host layer: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("host layer: %s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("host layer: %s changed while it was copied", src)
	}
	return nil
}
