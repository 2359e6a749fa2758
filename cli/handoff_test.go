package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHandOff runs the server commands of a binary without server parts:
// each hands its whole command line to ferryd, found beside the
// executable before PATH, or fails saying how to get ferryd, having done
// nothing.
func TestHandOff(t *testing.T) {
	beside := t.TempDir()
	exe := filepath.Join(beside, "ferry")
	onPath := filepath.Join(t.TempDir(), "ferryd")
	for _, f := range []string{exe, onPath} {
		if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		args     []string
		besideOK bool // ferryd beside ferry
		pathOK   bool // ferryd on PATH
		want     string
		wantErr  string
	}{
		{name: "beside wins", args: []string{"serve", "-c", "x.yaml"}, besideOK: true, pathOK: true, want: filepath.Join(beside, "ferryd")},
		{name: "on PATH", args: []string{"node", "release", "dev", "--data-dir", "d"}, pathOK: true, want: onPath},
		{name: "demo", args: []string{"demo", "--dir", "a b"}, pathOK: true, want: onPath},
		{name: "key", args: []string{"key", "public"}, pathOK: true, want: onPath},
		{name: "nowhere", args: []string{"serve", "--no-node"},
			wantErr: "ferry serve runs ferry's server parts, which are in the ferryd binary, not in this client: found neither " +
				filepath.Join(beside, "ferryd") + " nor ferryd on PATH; install both (from ferry's repository: go install ./cmd/ferry ./cmd/ferryd), or run it there: go run ./cmd/ferryd serve --no-node"},
		{name: "nowhere, the command quoted to paste", args: []string{"demo", "--dir", "it's here", "--app-src", ""},
			wantErr: `or run it there: go run ./cmd/ferryd demo --dir 'it'\''s here' --app-src ''`},
		{name: "bad flags stay here", args: []string{"serve", "--lease-ttl", "x"}, pathOK: true, wantErr: `invalid argument "x" for "--lease-ttl"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(filepath.Join(beside, "ferryd"))
			if tt.besideOK {
				if err := os.WriteFile(filepath.Join(beside, "ferryd"), []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var gotPath string
			var gotArgv []string
			off := handOff{
				args:       tt.args,
				executable: func() (string, error) { return exe, nil },
				lookPath: func(name string) (string, error) {
					if tt.pathOK && name == "ferryd" {
						return onPath, nil
					}
					return "", exec.ErrNotFound
				},
				exec: func(path string, argv, _ []string) error {
					gotPath, gotArgv = path, argv
					return errors.New("exec refused in the test")
				},
			}
			var out bytes.Buffer
			root := newRoot(strings.NewReader(""), &out, &out, serverParts{off: off})
			root.SetArgs(tt.args)
			err := root.ExecuteContext(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				if gotPath != "" {
					t.Errorf("ran %s despite the error", gotPath)
				}
				return
			}
			if gotPath != tt.want || !slices.Equal(gotArgv, append([]string{tt.want}, tt.args...)) {
				t.Errorf("exec %s %q, want %s with %q", gotPath, gotArgv, tt.want, tt.args)
			}
			if err == nil || !strings.Contains(err.Error(), "run "+tt.want+": exec refused in the test") {
				t.Errorf("error %v, want the exec's", err)
			}
		})
	}
}

// TestClientBinary builds the client and ferryd side by side, as go
// install puts them: the client's key public runs in ferryd and prints the
// key; without ferryd beside it or on PATH it fails and makes no key.
func TestClientBinary(t *testing.T) {
	dir := t.TempDir()
	for _, m := range []string{"ferry", "ferryd"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, m), "../cmd/"+m).CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", m, err, out)
		}
	}
	work := t.TempDir()
	cfg := filepath.Join(work, "ferry.yaml")
	if err := os.WriteFile(cfg, []byte(tinyConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(bin string) (string, string, error) {
		cmd := exec.Command(bin, "key", "public", "-c", cfg)
		cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	if out, stderr, err := run(filepath.Join(dir, "ferry")); err != nil || !strings.HasPrefix(out, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("ferry key public with ferryd beside: %v, stdout %q, stderr %q", err, out, stderr)
	}
	alone := filepath.Join(t.TempDir(), "ferry")
	if err := os.Rename(filepath.Join(dir, "ferry"), alone); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(work, "data"))
	out, stderr, err := run(alone)
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 1 || out != "" ||
		!strings.Contains(stderr, "ferry key public runs ferry's server parts, which are in the ferryd binary") {
		t.Errorf("ferry key public alone: %v, stdout %q, stderr %q; want exit 1 saying where ferryd is missing", err, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(work, "data", "signing.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed hand-off made a key: %v", err)
	}
}
