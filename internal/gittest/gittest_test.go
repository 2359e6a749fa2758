package gittest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNewFrom: the copied tree is committed without the files a developer
// leaves behind, by the chosen author, on the fixed clock.
func TestNewFrom(t *testing.T) {
	from := t.TempDir()
	for name, content := range map[string]string{"main.go": "package main\n", "sub/x.txt": "x\n", "app.db": "db", "pkg.test": "bin"} {
		p := filepath.Join(from, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := NewFrom(t, from, Author("Ada Tester"))
	if got, want := r.Git(time.Time{}, "ls-files"), "main.go\nsub/x.txt"; got != want {
		t.Errorf("files committed = %q, want %q", got, want)
	}
	first := r.Head()
	r.Write("sub/y.txt", "y\n")
	second := r.CommitAll("add y")
	if second == first || r.Head() != second {
		t.Errorf("CommitAll = %s after %s, Head = %s; want a new head", second, first, r.Head())
	}
	if got, want := r.Git(time.Time{}, "show", "-s", "--format=%s", first), "initial import"; got != want {
		t.Errorf("first commit subject = %q, want %q", got, want)
	}
	log := r.Git(time.Time{}, "log", "--format=%an <%ae> %cn %aI %cI")
	want := strings.Join([]string{
		"Ada Tester <ada@example.com> Ada Tester 2026-01-02T03:04:07+00:00 2026-01-02T03:04:07+00:00",
		"Ada Tester <ada@example.com> Ada Tester 2026-01-02T03:04:06+00:00 2026-01-02T03:04:06+00:00",
	}, "\n")
	if log != want {
		t.Errorf("git log = %q, want %q", log, want)
	}
}

// TestNewFromSameCommit: one tree and subject give one commit id, in any
// repository.
func TestNewFromSameCommit(t *testing.T) {
	from := t.TempDir()
	if err := os.WriteFile(filepath.Join(from, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := NewFrom(t, from), NewFrom(t, from, Author("Ada"))
	if a.Head() != b.Head() {
		t.Errorf("heads = %s, %s; want one commit id", a.Head(), b.Head())
	}
	if got := a.Git(time.Time{}, "show", "-s", "--format=%an"); got != "Ada" {
		t.Errorf("default author = %q, want Ada", got)
	}
}
