package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/demo"
	"github.com/ferryhq/ferry/internal/testport"
)

// resumedDemo prepares a demo directory on the default ports, then edits
// its ferry.yaml as a user would, moving every port: what a second `ferry
// demo` on that directory must serve and print.
func resumedDemo(t *testing.T, api, reg, dev, prod int) (string, *demo.Layout) {
	t.Helper()
	dir := t.TempDir()
	l, err := demo.Prepare(context.Background(), dir, "../examples/birthday-app", demo.DefaultPorts, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.NewReplacer(
		"127.0.0.1:7070", fmt.Sprintf("127.0.0.1:%d", api), "127.0.0.1:5050", fmt.Sprintf("127.0.0.1:%d", reg),
		"127.0.0.1:8081", fmt.Sprintf("127.0.0.1:%d", dev), "127.0.0.1:8082", fmt.Sprintf("127.0.0.1:%d", prod),
	).Replace(string(data))
	if yaml == string(data) {
		t.Fatalf("the demo's ferry.yaml has none of the default ports:\n%s", data)
	}
	if err := os.WriteFile(l.Config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, l
}

// TestDemoPrintsTheAddressesOfFerryYAML: the addresses the demo prints are
// those it serves, read from its ferry.yaml, not the flags' defaults.
func TestDemoPrintsTheAddressesOfFerryYAML(t *testing.T) {
	_, l := resumedDemo(t, 17070, 15050, 18081, 18082)
	cfg, err := config.Load(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printNextSteps(&out, l, servedAddrs(context.Background(), cfg, cfg.ServerURL(), cfg.ImageRepository()))
	words := strings.Join(strings.Fields(out.String()), " ") // the columns' widths aside
	for _, want := range []string{
		"dev http://127.0.0.1:18081 (curl http://127.0.0.1:18081/version)",
		"prod http://127.0.0.1:18082 (empty until a release)",
		"dashboard http://127.0.0.1:17070/ (sign in",
		"API http://127.0.0.1:17070 (the CLI's current server",
		"registry 127.0.0.1:15050/birthday-app",
		"git clone " + l.Repo + " birthday-app",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("the demo prints\n%s\nwant a line with %q", out.String(), want)
		}
	}
	// Every command it suggests parses with the real command tree.
	n := 0
	for _, line := range strings.Split(out.String(), "\n") {
		_, cmd, ok := strings.Cut(line, "go run ./cmd/ferry ")
		if !ok {
			continue
		}
		cmd, _, _ = strings.Cut(cmd, "#")
		cmd, _, _ = strings.Cut(cmd, ")")
		n++
		if err := parseCommand("ferry " + strings.TrimSpace(cmd)); err != nil {
			t.Errorf("the demo suggests %q: %v", line, err)
		}
	}
	if n < 5 {
		t.Errorf("the demo suggests %d ferry commands, want its next steps:\n%s", n, out.String())
	}
	for _, stale := range []string{":7070", ":8081", ":8082", ":5050"} {
		if strings.Contains(out.String(), stale) {
			t.Errorf("the demo prints the default port %s that ferry.yaml no longer has:\n%s", stale, out.String())
		}
	}
}

// TestDemoResumeKeepsFerryYAML: on a resumed demo the hook asks the server
// where ferry.yaml has it, and a port flag that ferry.yaml overrides is
// reported as ignored instead of silently printed as if served. The API
// port is taken, so the demo stops right after preparing, without a build.
func TestDemoResumeKeepsFerryYAML(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	api := busy.Addr().(*net.TCPAddr).Port
	dir, l := resumedDemo(t, api, testport.Free(t), testport.Free(t), testport.Free(t))
	fake := filepath.Join(t.TempDir(), "ferry")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "demo", "--dir", dir, "--app-src", "../examples/birthday-app", "--ferry-binary", fake,
		"--dev-port", "8081", "--api-port", "7070")
	if code == 0 {
		t.Fatalf("ferry demo with its API port taken: exit 0, want a failure\n%s", stdout)
	}
	for _, want := range []string{
		"--dev-port 8081 is ignored: " + l.Config + " keeps environments.dev.runtime.local.listen: 127.0.0.1:",
		fmt.Sprintf("--api-port 7070 is ignored: %s keeps server.listen: 127.0.0.1:%d", l.Config, api),
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("ferry demo on a resumed directory printed\n%s%s\nwant %q", stdout, stderr, want)
		}
	}
	hook, err := os.ReadFile(filepath.Join(l.Repo, "hooks", "pre-receive"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("--server 'http://127.0.0.1:%d'", api); !strings.Contains(string(hook), want) {
		t.Errorf("the pre-receive hook is\n%s\nwant it to ask the server of ferry.yaml: %s", hook, want)
	}
}
