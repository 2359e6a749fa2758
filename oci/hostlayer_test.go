package oci

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostLayer: a layer of host files keeps modes, symbolic and hard
// links, and the host's directory links, skips what it is told to, and
// is the same layer when built again.
func TestHostLayer(t *testing.T) {
	root := t.TempDir()
	write := func(rel, data string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/lib/libz.so.1.2", "zlib", 0o644)
	write("usr/bin/tool", "#!tool", 0o755)
	write("usr/lib/tool-core/testdata/big", "skipped", 0o644)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("libz.so.1.2", filepath.Join(root, "usr/lib/libz.so.1")))
	must(os.Symlink("usr/lib", filepath.Join(root, "lib")))
	must(os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/lib/tool-core/tool-fetch")))

	paths := []HostPath{
		{Host: filepath.Join(root, "lib/libz.so.1")}, // through the directory link
		{Host: filepath.Join(root, "usr/lib/tool-core"), Skip: func(rel string) bool { return rel == "testdata" }},
		{Host: filepath.Join(root, "usr/bin/tool"), Image: "/opt/tool"},
		{Host: filepath.Join(root, "usr/bin/tool")},
	}
	l1, err := HostLayer(paths)
	must(err)
	l2, err := HostLayer(paths)
	must(err)
	d1, _ := l1.Digest()
	if d2, _ := l2.Digest(); d1 != d2 {
		t.Errorf("the same files gave layers %s and %s", d1, d2)
	}

	rc, err := l1.Uncompressed()
	must(err)
	defer rc.Close()
	got := map[string]*tar.Header{}
	contents := map[string]string{}
	var order []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(err)
		b, _ := io.ReadAll(tr)
		name := strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), strings.TrimPrefix(root, "/")+"/")
		got[name], contents[name] = h, string(b)
		order = append(order, name)
	}
	for _, tc := range []struct {
		name     string
		typ      byte
		mode     int64
		link     string // symbolic link target, or the hard link's first name (suffix)
		contents string
	}{
		{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		{name: "usr/lib/libz.so.1", typ: tar.TypeSymlink, link: "libz.so.1.2"},
		{name: "usr/lib/libz.so.1.2", typ: tar.TypeReg, mode: 0o644, contents: "zlib"},
		{name: "usr/lib/tool-core", typ: tar.TypeDir},
		// One inode under three names: the first in the archive holds it.
		{name: "opt/tool", typ: tar.TypeReg, mode: 0o755, contents: "#!tool"},
		{name: "usr/bin/tool", typ: tar.TypeLink, link: "opt/tool"},
		{name: "usr/lib/tool-core/tool-fetch", typ: tar.TypeLink, link: "opt/tool"},
	} {
		h, ok := got[tc.name]
		if !ok {
			t.Errorf("%s is not in the layer; it has %v", tc.name, order)
			continue
		}
		if h.Typeflag != tc.typ || (tc.mode != 0 && h.Mode != tc.mode) || !strings.HasSuffix(h.Linkname, tc.link) || contents[tc.name] != tc.contents ||
			h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: type %c mode %o link %q contents %q owner %d:%d time %d; want type %c mode %o link …%q contents %q, root, the epoch",
				tc.name, h.Typeflag, h.Mode, h.Linkname, contents[tc.name], h.Uid, h.Gid, h.ModTime.Unix(), tc.typ, tc.mode, tc.link, tc.contents)
		}
	}
	if _, ok := got["usr/lib/tool-core/testdata"]; ok {
		t.Error("the skipped directory is in the layer")
	}
	seen := map[string]bool{}
	for _, n := range order {
		if h := got[n]; h.Typeflag == tar.TypeLink && !seen[strings.TrimPrefix(h.Linkname, strings.TrimPrefix(root, "/")+"/")] {
			t.Errorf("hard link %s comes before its target %s", n, h.Linkname)
		}
		seen[n] = true
	}
}
