package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/ferryhq/ferry/examples/birthday-app"

// moduleRoot is the directory of birthday-app's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestNoFerryImports proves that birthday-app stands alone: neither its
// go.mod nor any package it builds or tests depends on ferry's module.
func TestNoFerryImports(t *testing.T) {
	root := moduleRoot(t)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(gomod)) {
		f := strings.Fields(line)
		for _, w := range f {
			if w == "github.com/ferryhq/ferry" || strings.HasPrefix(w, "github.com/ferryhq/ferry/") && w != module {
				t.Errorf("go.mod names ferry's module: %q", strings.TrimSpace(line))
			}
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-test", "-json=ImportPath,Module", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for {
		var p struct {
			ImportPath string
			Module     *struct{ Path string }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		inFerry := p.ImportPath == "github.com/ferryhq/ferry" || strings.HasPrefix(p.ImportPath, "github.com/ferryhq/ferry/")
		if inFerry && !strings.HasPrefix(p.ImportPath, module) {
			t.Errorf("package %s depends on ferry's module", p.ImportPath)
		}
		if p.Module != nil && p.Module.Path == "github.com/ferryhq/ferry" {
			t.Errorf("package %s comes from ferry's module", p.ImportPath)
		}
	}
	if n < 50 {
		t.Errorf("go list -deps listed only %d packages; the check saw too little", n)
	}
}

// TestPackageDocs checks that every package of the module has a doc
// comment.
func TestPackageDocs(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}\t{{.Doc}}", "./...")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		path, doc, _ := strings.Cut(strings.TrimSpace(line), "\t")
		if doc == "" {
			t.Errorf("package %s has no doc comment", path)
		}
	}
}
