package demo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepareInstallsHook: the demo's repository gets a pre-receive hook
// that runs a copy of ferry's executable kept in the demo directory, and
// the copy is refreshed by every Prepare.
func TestPrepareInstallsHook(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(t.TempDir(), "ferry")
	write := func(body string) {
		// A stand-in for ferry that records how the hook called it.
		if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \""+body+" $*\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("v1")
	l, err := Prepare(context.Background(), dir, "../examples/birthday-app", DefaultPorts, func(string) {})
	if err != nil {
		t.Fatalf("Prepare = %v", err)
	}
	if err := l.InstallHook(fake, "http://127.0.0.1:7070"); err != nil {
		t.Fatalf("InstallHook = %v", err)
	}
	if l.Ferry != filepath.Join(l.Dir, "bin", "ferry") {
		t.Errorf("Layout.Ferry = %q, want <dir>/bin/ferry", l.Ferry)
	}
	hook := filepath.Join(l.Repo, "hooks", "pre-receive")
	runHook := func() string {
		out, err := exec.Command(hook).CombinedOutput()
		if err != nil {
			t.Fatalf("running the hook: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got, want := runHook(), "v1 hook pre-receive --server http://127.0.0.1:7070 --master master --branch release --env prod"; got != want {
		t.Errorf("the hook runs %q, want %q", got, want)
	}
	// A second Prepare (a resumed demo) refreshes the copy.
	write("v2")
	l, err = Prepare(context.Background(), dir, "../examples/birthday-app", DefaultPorts, func(string) {})
	if err != nil {
		t.Fatalf("second Prepare = %v", err)
	}
	if err := l.InstallHook(fake, "http://127.0.0.1:7171"); err != nil {
		t.Fatalf("second InstallHook = %v", err)
	}
	if got, want := runHook(), "v2 hook pre-receive --server http://127.0.0.1:7171 "; !strings.HasPrefix(got, want) {
		t.Errorf("after a second InstallHook the hook runs %q, want the refreshed %q…", got, want)
	}
	// Without an explicit executable Prepare copies the running one,
	// unless it is a test binary, which would run the tests as a hook.
	err = l.InstallHook("", "http://127.0.0.1:7070")
	if err == nil || !strings.Contains(err.Error(), "test binary") {
		t.Errorf("InstallHook from a test binary without ferry's executable = %v, want a refusal", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"/a/b": "'/a/b'", "/it's here": `'/it'\''s here'`} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestThreeStages: --stages dev,staging,prod writes a chain dev (master)
// → staging (promoted from dev, on the port after prod's) → prod (from
// staging, on release), each with its own database; the hook guards the
// last stage.
func TestThreeStages(t *testing.T) {
	dir := t.TempDir()
	l, err := PrepareStages(context.Background(), dir, "../examples/birthday-app", DefaultPorts, []string{"dev", "staging", "prod"}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	for _, want := range []string{
		"  staging:\n    from: dev ",
		"listen: 127.0.0.1:8083",
		"sqlite://birthday-staging.db",
		"  prod:\n    branch: release                    # changed only by a controlled release\n    from: staging\n",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("ferry.yaml lacks %q:\n%s", want, y)
		}
	}
	if l.Release != "prod" {
		t.Errorf("Release = %q, want prod", l.Release)
	}
	for _, bad := range [][]string{{"dev"}, {"dev", "dev"}, {"dev", "Prod"}} {
		if _, err := PrepareStages(context.Background(), t.TempDir(), "../examples/birthday-app", DefaultPorts, bad, func(string) {}); err == nil {
			t.Errorf("PrepareStages(%q) = nil, want refused", bad)
		}
	}
}
