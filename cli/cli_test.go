package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/server"
)

// run executes the CLI in-process and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, server.Parts{})
	code := 0
	if err != nil {
		code = ExitCode(err)
		stderr.WriteString("ferry: " + err.Error() + "\n")
	}
	return stdout.String(), stderr.String(), code
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `app: birthday-app
source: { repo: /srv/git/birthday-app.git }
build: { go: { main: ./cmd/birthday-app } }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    branch: release
    from: dev
    runtime: { local: { listen: 127.0.0.1:8082 } }
`)
	bad := write("bad.yaml", `app: birthday-app
source: { repo: /srv/git/birthday-app.git }
build: { go: { main: ./cmd/birthday-app } }
environments:
  dev:
    brnch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    branch: release
    from: dve
    runtime: { local: { listen: 127.0.0.1:8082 } }
`)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout+stderr
	}{
		{"valid", []string{"config", "check", "-c", good}, 0, []string{"ok (app birthday-app, environments [dev prod])"}},
		{"invalid names file, line and field", []string{"config", "check", "-c", bad}, 2, []string{
			bad + `:6: environments.dev.brnch: unknown field (did you mean "branch"?)`,
			bad + `:10: environments.prod.from: unknown environment "dve" (did you mean "dev"?)`,
		}},
		{"missing file", []string{"config", "check", "-c", filepath.Join(dir, "nope.yaml")}, 2, []string{"nope.yaml"}},
		{"example is valid", []string{"config", "example"}, 0, []string{"environments:"}},
		{"unknown output format", []string{"builds", "-o", "xml"}, 2, []string{`unknown output format "xml"`}},
		{"bad server URL", []string{"builds", "--server", "localhost:7070"}, 2, []string{"--server"}},
		{"unreachable server", []string{"builds", "--server", "http://127.0.0.1:1"}, 1, []string{"cannot reach the ferry server at http://127.0.0.1:1"}},
		{"bad build id", []string{"logs", "build", "x1"}, 2, []string{`build id "x1" is not a positive number`}},
		{"unknown command", []string{"promot"}, 1, []string{`unknown command "promot"`, "Did you mean this?\n\tpromote"}},
		{"swapped letters", []string{"stauts"}, 1, []string{`unknown command "stauts"`, "Did you mean this?\n\tstatus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("ferry %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.wantCode, stdout, stderr)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(stdout+stderr, want) {
					t.Errorf("ferry %s: output lacks %q\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), want, stdout, stderr)
				}
			}
		})
	}
}

func TestExampleConfigRoundTrip(t *testing.T) {
	stdout, _, code := run(t, "config", "example")
	if code != 0 {
		t.Fatalf("config example: exit %d", code)
	}
	p := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(p, []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run(t, "config", "check", "-c", p); code != 0 {
		t.Fatalf("config check of the example: exit %d: %s", code, stderr)
	}
}

// TestGroupCommands: a command that gathers others shows its help alone
// and refuses a word that names none of them, instead of printing the
// help with exit status 0 as if it had done something.
func TestGroupCommands(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		stdout   string
		stderr   string
		noStdout bool
	}{
		{args: []string{"token"}, stdout: "Available Commands:"},
		{args: []string{"rollout"}, stdout: "promote"},
		{args: []string{"token", "crate", "ci"}, code: 1, stderr: `unknown command "crate" for "ferry token"`, noStdout: true},
		{args: []string{"rollout", "bogus", "prod"}, code: 1, stderr: `unknown command "bogus" for "ferry rollout"`, noStdout: true},
		{args: []string{"key", "private"}, code: 1, stderr: `unknown command "private" for "ferry key"`, noStdout: true},
		{args: []string{"hook", "post-receive"}, code: 1, stderr: `unknown command "post-receive" for "ferry hook"`, noStdout: true},
		{args: []string{"config", "chek"}, code: 1, stderr: `run 'ferry config --help' for its commands`, noStdout: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := run(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) || (tc.noStdout && stdout != "") {
				t.Errorf("ferry %s = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
