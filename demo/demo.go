// Package demo prepares `ferry demo`'s working directory: birthday-app in
// its own bare git repository with history on master, guarded by ferry's
// pre-receive hook, and a ferry.yaml on embedded defaults with dev (from
// master) and prod (from release) — or any chain of stages, such as dev,
// staging, prod (PrepareStages) — each with its own database. A second
// Prepare on the same directory keeps what is there, so a demo resumes
// where it stopped.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"text/template"
)

// Ports are the demo's listen ports on 127.0.0.1.
type Ports struct {
	API, Registry, Dev, Prod int
}

// DefaultPorts are documented in the README.
var DefaultPorts = Ports{API: 7070, Registry: 5050, Dev: 8081, Prod: 8082}

// Layout names what Prepare made.
type Layout struct {
	Dir    string // the demo directory (absolute)
	Repo   string // the bare repository of birthday-app
	Config string // ferry.yaml
	// Ferry is the copy of ferry's executable that the repository's
	// pre-receive hook runs (<dir>/bin/ferry).
	Ferry string
	// Created is true when this call made the repository (a fresh demo).
	Created bool
	// Release is the last stage, the one the release branch drives and
	// the pre-receive hook guards.
	Release string
}

// DefaultStages are the demo's environments unless asked for others.
var DefaultStages = []string{"dev", "prod"}

// CheckStages refuses a chain of stages the demo cannot write: at least
// two, distinct, each a valid environment name.
func CheckStages(stages []string) error {
	if len(stages) < 2 {
		return fmt.Errorf("--stages needs at least two stages (the first follows master, the last is released), got %q", strings.Join(stages, ","))
	}
	seen := map[string]bool{}
	for _, st := range stages {
		if !stageName().MatchString(st) {
			return fmt.Errorf("--stages: %q is not an environment name (a lowercase letter, then lowercase letters, digits or dashes)", st)
		}
		if seen[st] {
			return fmt.Errorf("--stages: %s is named twice", st)
		}
		seen[st] = true
	}
	return nil
}

var stageName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9-]*$`) })

// Prepare makes (or reuses) the demo directory. appSrc is birthday-app's
// source tree; ports go into a new ferry.yaml (an existing one is kept as
// the user left it, so its addresses are the ones the demo serves);
// progress hears one line per step. The repository's pre-receive hook is
// installed apart (InstallHook), once the server's address is read from
// ferry.yaml.
func Prepare(ctx context.Context, dir, appSrc string, ports Ports, progress func(string)) (*Layout, error) {
	return PrepareStages(ctx, dir, appSrc, ports, DefaultStages, progress)
}

// PrepareStages is Prepare with the chain of stages a new ferry.yaml
// gets: the first follows master, each next one is promoted from the one
// before, the last from the release branch. Stages between the first and
// the last listen on the ports after ports.Prod.
func PrepareStages(ctx context.Context, dir, appSrc string, ports Ports, stages []string, progress func(string)) (*Layout, error) {
	return PrepareWith(ctx, dir, appSrc, ports, Options{Stages: stages}, progress)
}

// Options shape a new ferry.yaml beyond its ports.
type Options struct {
	// Stages is the chain of environments (see PrepareStages).
	Stages []string
	// Approval makes every release of the last stage wait for a second
	// person's approval: approval: { required: 1, role: releaser,
	// selfApproval: false }.
	Approval bool
}

// PrepareWith is Prepare with opts.
func PrepareWith(ctx context.Context, dir, appSrc string, ports Ports, opts Options, progress func(string)) (*Layout, error) {
	stages := opts.Stages
	if err := CheckStages(stages); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	l := &Layout{Dir: abs, Repo: filepath.Join(abs, "birthday-app.git"), Config: filepath.Join(abs, "ferry.yaml"), Release: stages[len(stages)-1]}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", abs, err)
	}
	if _, err := os.Stat(filepath.Join(l.Repo, "HEAD")); err != nil {
		if _, err := os.Stat(filepath.Join(appSrc, "go.mod")); err != nil {
			return nil, fmt.Errorf("birthday-app's sources are not at %s: run the demo from the ferry repository's root, or pass --app-src", appSrc)
		}
		progress("creating birthday-app's git repository at " + l.Repo)
		if err := createRepo(ctx, appSrc, l.Repo); err != nil {
			return nil, fmt.Errorf("create the demo repository: %w", err)
		}
		l.Created = true
	}
	if _, err := os.Stat(l.Config); err != nil {
		progress("writing " + l.Config)
		if err := writeConfig(l.Config, ports, stages, opts.Approval); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// createRepo imports appSrc into a new repository in two commits (the
// service, then its README), so master has history, and clones it bare.
func createRepo(ctx context.Context, appSrc, bare string) error {
	work, err := os.MkdirTemp(filepath.Dir(bare), ".birthday-app-import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := copyTree(appSrc, work); err != nil {
		return err
	}
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(),
			"GIT_AUTHOR_NAME=ferry demo", "GIT_AUTHOR_EMAIL=demo@ferry.invalid",
			"GIT_COMMITTER_NAME=ferry demo", "GIT_COMMITTER_EMAIL=demo@ferry.invalid",
			"GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	steps := [][]string{
		{"init", "-q", "-b", "master"},
		{"add", "-A", "--", ".", ":!README.md"},
		{"commit", "-q", "-m", "birthday-app: the hello-birthday service"},
		{"add", "-A"},
		{"commit", "-q", "--allow-empty", "-m", "docs: how to run birthday-app"},
		{"clone", "-q", "--bare", work, bare},
	}
	for _, s := range steps {
		if err := git(s...); err != nil {
			return err
		}
	}
	return nil
}

// InstallHook copies ferry's executable (empty: the running one) to
// <dir>/bin/ferry (`go run` deletes its own binary on exit) and makes the
// repository's pre-receive hook run it: release moves only along master or
// back to a release. The hook asks the demo's server (at server, the URL
// of ferry.yaml's server.listen) for prod's known releases, with the token
// the demo stores for it in the credentials file of whoever pushes. Every
// call refreshes the hook and the copy.
func (l *Layout) InstallHook(ferry, server string) error {
	if err := installHook(l, ferry, server); err != nil {
		return fmt.Errorf("install the pre-receive hook: %w", err)
	}
	return nil
}

func installHook(l *Layout, ferry, server string) error {
	if ferry == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find ferry's executable: %w", err)
		}
		// A test binary is not ferry: run as a hook, it would run the tests.
		if strings.HasSuffix(filepath.Base(exe), ".test") {
			return fmt.Errorf("%s is a test binary, not ferry: pass ferry's executable", exe)
		}
		ferry = exe
	}
	l.Ferry = filepath.Join(l.Dir, "bin", "ferry")
	if err := os.MkdirAll(filepath.Dir(l.Ferry), 0o755); err != nil {
		return err
	}
	if err := copyFile(ferry, l.Ferry, 0o755); err != nil {
		return fmt.Errorf("copy ferry's executable: %w", err)
	}
	script := "#!/bin/sh\n" +
		"# Installed by `ferry demo`: refuses pushes that ferry would not deploy as\n" +
		"# they say (release moved other than forward along master or back to a\n" +
		"# release prod ran, or past a lock or quarantine) and any push of ferry's own\n" +
		"# RC… and env/… tags; the demo's server judges each (push-check).\n" +
		"exec " + shellQuote(l.Ferry) + " hook pre-receive --server " + shellQuote(server) + " --master master --branch release --env " + shellQuote(l.Release) + "\n"
	hooks := filepath.Join(l.Repo, "hooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(hooks, "pre-receive"), []byte(script), 0o755)
}

// copyFile copies src to dst through a temporary file and a rename, so a
// hook running the old dst keeps its file and never sees a half-written one.
func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".new-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() || strings.Contains(filepath.Base(p), ".db") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

const buildinfo = "github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo"

// configTemplate is parsed on first use, not at start: every ferry
// command links this package, and only `ferry demo` writes the file.
var configTemplate = sync.OnceValue(func() *template.Template { return template.Must(template.New("ferry.yaml").Parse(configText)) })

const configText = `# ferry.yaml written by ` + "`ferry demo`" + `. Every field: docs/config.md in ferry's repository.
app: birthday-app
server:
  listen: 127.0.0.1:{{.API}}
registry:
  listen: 127.0.0.1:{{.Registry}}      # the embedded registry
source:
  repo: ./birthday-app.git
  poll: 2s
build:
  test: go test ./...                  # the app's whole suite
  go:
    main: ./cmd/birthday-app
    ldflags: -X ` + buildinfo + `.Commit={{"{{"}}.Commit{{"}}"}} -X ` + buildinfo + `.BuildTime={{"{{"}}.Time.UTC.Format "2006-01-02T15:04:05Z"{{"}}"}}
  integration:                         # each image on trial, with its own database, before dev
    env:
      DATABASE_URL: sqlite://birthday-trial.db
    checks: &roundtrip
      - { http: GET /statusz, expect: 200 }
      - { http: PUT /hello/ferrycheck, headers: { Content-Type: application/json }, body: '{"dateOfBirth":"1990-05-17"}', expect: 204 }
      - { http: GET /hello/ferrycheck, expect: 200, json: { field: message, contains: "Hello, ferrycheck!" } }
environments:
  {{.First}}:
    branch: master                     # every commit on master is built and rolled out here
    tags: [latest]
    runtime:
      local: { replicas: 2, listen: 127.0.0.1:{{.Dev}}, readiness: /statusz }
    rollout: { readyTimeout: 15s, grace: 10s }   # a replica not ready in 15s fails the rollout
    env:
      DATABASE_URL: sqlite://birthday-{{.First}}.db   # dev and prod never share a database
    verify: *roundtrip                 # the same round trip after every rollout
{{- range .Middle}}
  {{.Name}}:
    from: {{.From}}                    # promoted from {{.From}} (ferry promote --to {{.Name}})
    runtime:
      local: { replicas: 2, listen: 127.0.0.1:{{.Port}}, readiness: /statusz }
    rollout: { readyTimeout: 15s, grace: 10s }
    env:
      DATABASE_URL: sqlite://birthday-{{.Name}}.db
    verify: *roundtrip
{{- end}}
  {{.Last}}:
    branch: release                    # changed only by a controlled release
    from: {{.LastFrom}}
    tags: [live]
    releaseTag: RC{{"{{"}} .Time.UTC.Format "20060102_1504" {{"}}"}}
{{- if .Approval}}
    approval: { required: 1, role: releaser, selfApproval: false }   # a second person approves each release (ferry approve ID)
{{- end}}
    runtime:
      local: { replicas: 2, listen: 127.0.0.1:{{.Prod}}, readiness: /statusz }
    rollout: { readyTimeout: 15s, grace: 10s }
    env:
      DATABASE_URL: sqlite://birthday-{{.Last}}.db
    verify: *roundtrip
`

// stage is one environment between the first and the last.
type stage struct {
	Name, From string
	Port       int
}

func writeConfig(path string, ports Ports, stages []string, approval bool) error {
	data := struct {
		Ports
		First, Last, LastFrom string
		Middle                []stage
		Approval              bool
	}{Ports: ports, First: stages[0], Last: stages[len(stages)-1], LastFrom: stages[len(stages)-2], Approval: approval}
	for i := 1; i < len(stages)-1; i++ {
		data.Middle = append(data.Middle, stage{Name: stages[i], From: stages[i-1], Port: ports.Prod + i})
	}
	var b bytes.Buffer
	if err := configTemplate().Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
