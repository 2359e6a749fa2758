package oci

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestBuildGoReproducible(t *testing.T) {
	dir := helloModule(t)
	a1 := buildHello(t, dir, commitN(1))
	a2 := buildHello(t, helloModule(t), commitN(1)) // another worktree, same commit
	b := buildHello(t, dir, commitN(2))

	d := func(img v1.Image) v1.Hash {
		h, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if d(a1) != d(a2) {
		t.Errorf("same commit built twice: digests %s and %s, want equal", d(a1), d(a2))
	}
	if d(a1) == d(b) {
		t.Errorf("different commits: both digests %s, want different", d(a1))
	}
	la, _ := a1.Layers()
	lb, _ := b.Layers()
	da, _ := la[0].Digest()
	db, _ := lb[0].Digest()
	if da != db {
		t.Errorf("base layer differs between commits (%s, %s): want it shared", da, db)
	}
}

func TestBuildGoImage(t *testing.T) {
	c := commitN(3)
	img := buildHello(t, helloModule(t), c)

	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type = %s, want %s", mt, types.OCIManifestSchema1)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("config media type = %s, want %s", m.Config.MediaType, types.OCIConfigJSON)
	}
	for i, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer %d media type = %s, want %s", i, l.MediaType, types.OCILayer)
		}
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ what, got, want string }{
		{"User", cf.Config.User, "65532:65532"},
		{"Entrypoint", strings.Join(cf.Config.Entrypoint, " "), "/app/hello"},
		{"WorkingDir", cf.Config.WorkingDir, "/app"},
		{"OS", cf.OS, "linux"},
		{"Created", cf.Created.UTC().Format(time.RFC3339), "2025-03-14T15:09:26Z"},
		{"label revision", cf.Config.Labels[LabelRevision], c},
		{"label source", cf.Config.Labels[LabelSource], "https://git.example.com/team/hello.git"},
		{"label created", cf.Config.Labels[LabelCreated], "2025-03-14T15:09:26Z"},
		{"label version", cf.Config.Labels[LabelVersion], c[:12]},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("config %s = %q, want %q", ck.what, ck.got, ck.want)
		}
	}
	if !slices.Contains(cf.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") ||
		!slices.ContainsFunc(cf.Config.Env, func(s string) bool { return strings.HasPrefix(s, "PATH=") }) {
		t.Errorf("config Env = %q, want SSL_CERT_FILE and PATH", cf.Config.Env)
	}
	for _, h := range cf.History {
		if !h.Created.Time.Equal(commitTime) {
			t.Errorf("history %q created %s, want the commit time", h.CreatedBy, h.Created)
		}
	}

	hostCerts, err := os.ReadFile(HostCACerts)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*tar.Header{}
	contents := map[string][]byte{}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !h.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("%s: mtime %s, want the epoch", h.Name, h.ModTime)
			}
			files[strings.TrimSuffix(h.Name, "/")] = h
			contents[strings.TrimSuffix(h.Name, "/")], _ = io.ReadAll(tr)
		}
		rc.Close()
	}
	want := []struct {
		name string
		typ  byte
		mode int64
		uid  int
	}{
		{"etc/passwd", tar.TypeReg, 0o644, 0},
		{"etc/group", tar.TypeReg, 0o644, 0},
		{"etc/ssl/certs/ca-certificates.crt", tar.TypeReg, 0o644, 0},
		{"tmp", tar.TypeDir, 0o1777, 0},
		{"home/nonroot", tar.TypeDir, 0o700, 65532},
		{"app/hello", tar.TypeReg, 0o755, 0},
	}
	for _, w := range want {
		h, ok := files[w.name]
		if !ok {
			t.Errorf("image has no /%s", w.name)
			continue
		}
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Uid != w.uid {
			t.Errorf("/%s: type %c mode %o uid %d, want type %c mode %o uid %d", w.name, h.Typeflag, h.Mode, h.Uid, w.typ, w.mode, w.uid)
		}
	}
	if !strings.Contains(string(contents["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd = %q, want a nonroot user 65532", contents["etc/passwd"])
	}
	if !strings.Contains(string(contents["etc/group"]), "nonroot:x:65532:") {
		t.Errorf("/etc/group = %q, want a nonroot group 65532", contents["etc/group"])
	}
	if !bytes.Equal(contents["etc/ssl/certs/ca-certificates.crt"], hostCerts) {
		t.Errorf("CA bundle in image (%d bytes) differs from the host's (%d bytes)", len(contents["etc/ssl/certs/ca-certificates.crt"]), len(hostCerts))
	}
	if !bytes.HasPrefix(contents["app/hello"], []byte("\x7fELF")) {
		t.Error("/app/hello is not an ELF binary")
	}
	if size := imageSize(t, img); size > 20<<20 {
		t.Errorf("image size %d bytes, want ≤ 20 MiB", size)
	} else {
		t.Logf("image size: %.2f MiB", float64(size)/(1<<20))
	}
}

func TestBuildGoImageRuns(t *testing.T) {
	c := commitN(4)
	img := buildHello(t, helloModule(t), c)
	if got := runImage(t, img); got != c {
		t.Errorf("GET /version = %q, want %q", got, c)
	}
}

func TestBuildGoCompileError(t *testing.T) {
	dir := helloModule(t)
	main := filepath.Join(dir, "cmd", "hello", "main.go")
	src, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(src), "fmt.Fprintln(w, commit)", "fmt.Fprintln(w, comit)", 1)
	if err := os.WriteFile(main, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	img, err := BuildGo(t.Context(), helloBuild(dir, commitN(5)), &log)
	if err == nil {
		t.Fatalf("BuildGo of broken code = %v, nil error", img)
	}
	for _, want := range []string{"go build ./cmd/hello", "exit status", "undefined: comit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if !strings.Contains(log.String(), "cmd/hello/main.go") || !strings.Contains(log.String(), "undefined: comit") {
		t.Errorf("log lacks the compiler output:\n%s", log.String())
	}
	if !strings.HasPrefix(log.String(), "$ CGO_ENABLED=0 ") {
		t.Errorf("log does not start with the command:\n%s", log.String())
	}
}

func TestBuildGoBadInput(t *testing.T) {
	dir := helloModule(t)
	tests := []struct {
		name   string
		change func(*GoBuild)
		want   string
	}{
		{"no dir", func(b *GoBuild) { b.Dir = "" }, "no module directory"},
		{"missing dir", func(b *GoBuild) { b.Dir = filepath.Join(dir, "nope") }, "go build ./cmd/hello"},
		{"missing package", func(b *GoBuild) { b.Main = "./cmd/nope" }, "go build ./cmd/nope"},
		{"main ..", func(b *GoBuild) { b.Main = ".." }, "name the package directory"},
		{"no CA bundle", func(b *GoBuild) { b.CACerts = filepath.Join(dir, "none.crt") }, "CA certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := helloBuild(dir, commitN(6))
			tt.change(&b)
			_, err := BuildGo(t.Context(), b, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("BuildGo(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestBinaryName(t *testing.T) {
	tests := []struct{ main, want string }{
		{"./cmd/birthday-app", "birthday-app"},
		{"./cmd/birthday-app/", "birthday-app"},
		{".", "app"},
		{"example.com/x/cmd/tool", "tool"},
	}
	for _, tt := range tests {
		if got, err := binaryName(tt.main); err != nil || got != tt.want {
			t.Errorf("binaryName(%q) = %q, %v, want %q", tt.main, got, err, tt.want)
		}
	}
}

func TestLineWriter(t *testing.T) {
	var out bytes.Buffer
	var writes int
	lw := &lineWriter{w: writerFunc(func(p []byte) (int, error) { writes++; return out.Write(p) })}
	for _, chunk := range []string{"one\ntw", "o\r\n", "", "thr", "ee"} {
		lw.Write([]byte(chunk))
	}
	lw.flush()
	if got, want := out.String(), "one\ntwo\nthree\n"; got != want {
		t.Errorf("lineWriter output = %q, want %q", got, want)
	}
	if writes != 3 {
		t.Errorf("lineWriter made %d writes, want one per line (3)", writes)
	}
	for i := range 30 {
		lw.Write([]byte{byte('a' + i%26), '\n'})
	}
	if len(lw.tail) != tailLines || lw.tail[tailLines-1] != "d" {
		t.Errorf("tail = %q, want the last %d lines ending in d", lw.tail, tailLines)
	}
	out.Reset()
	lw.Write(bytes.Repeat([]byte("x"), maxLine+10))
	if out.Len() != maxLine+1 {
		t.Errorf("overlong line: passed on %d bytes, want %d", out.Len(), maxLine+1)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
