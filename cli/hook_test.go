package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
	"github.com/ferryhq/ferry/release"
)

var (
	buildOnce sync.Once
	binDir    string // holds the ferry binary built for this test binary
	binPath   string
	binErr    error
)

// ferryBinary builds ./cmd/ferry once per test binary and returns its
// path: the real executable, for what runs ferry as a separate program
// (git hooks). TestMain removes it (removeFerryBinary).
func ferryBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "ferry-cli-test-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "ferry")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/ferry").CombinedOutput()
		if err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("go build ./cmd/ferry: %v\n%s", binErr, binPath)
	}
	return binPath
}

func removeFerryBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// hookEnv is a clean environment for git in hook tests: no user or system
// configuration, a fixed identity, no variable pointing git elsewhere.
func hookEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada Lovelace", "GIT_COMMITTER_EMAIL=ada@example.com")
}

// gitTry runs git in dir and returns its combined output and error.
func gitTry(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = hookEnv()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func gitOK(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := gitTry(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// installHook makes bin the pre-receive hook of the bare repository.
func installHook(t *testing.T, bare, bin string, args ...string) {
	t.Helper()
	script := "#!/bin/sh\nexec '" + bin + "' hook pre-receive " + strings.Join(args, " ") + "\n"
	if err := os.WriteFile(filepath.Join(bare, "hooks", "pre-receive"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// ledgerReleases answers the known releases route from a ledger, the
// way the controller does: prod's succeeded deployments, through
// release.KnownReleases. The other release routes are not called here.
type ledgerReleases struct {
	api.Releases
	store ledger.Store
}

var hookProd = ferry.Environment{Name: "prod", Branch: "release", From: "dev"}

// CheckPush judges a push on the ledger's known releases and what each
// environment runs, as the controller does; the gates of the promotion or
// rollback a move starts (locks, quarantines, success in dev) are the
// controller's, and are shown through the demo (TestSeedCommands).
func (l ledgerReleases) CheckPush(ctx context.Context, env string, ups []release.PushUpdate) ([]release.Verdict, error) {
	known, err := l.KnownReleases(ctx, env)
	if err != nil {
		return nil, err
	}
	f := release.PushFacts{Env: hookProd, Known: known, Runs: map[string]string{}}
	for _, name := range []string{"dev", "prod"} {
		if cur, err := l.store.Current(ctx, "app", name); err == nil {
			f.Runs[name] = cur.Commit
		}
	}
	out := make([]release.Verdict, len(ups))
	for i, u := range ups {
		out[i] = release.JudgePush(u, f)
	}
	return out, nil
}

func (l ledgerReleases) KnownReleases(ctx context.Context, env string) ([]release.Known, error) {
	if env != hookProd.Name {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "unknown environment %q (environments: [dev prod])", env)
	}
	ds, err := l.store.Deployments(ctx, ledger.DeploymentFilter{App: "app", Env: env, States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 1000})
	if err != nil {
		return nil, err
	}
	return release.KnownReleases(hookProd, ds), nil
}

// hookServer is ferry's API for the hook: the real routes with access
// control over a SQLite ledger. released records that prod ran commit as
// a release, which makes it a known release.
type hookServer struct {
	url, token string // token: a viewer's, all the hook needs
	store      ledger.Store
	n          int
}

func newHookServer(t *testing.T) *hookServer {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tokens := &auth.Tokens{Store: store, App: "app"}
	_, viewer, err := tokens.Create(t.Context(), "git-hook", ferry.RoleViewer, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&api.Server{
		App: "app", Ledger: store, Releases: ledgerReleases{store: store}, Tokens: tokens, Logger: slog.New(slog.DiscardHandler),
	}).Handler())
	t.Cleanup(srv.Close)
	return &hookServer{url: srv.URL, token: viewer, store: store}
}

func (h *hookServer) flags() []string { return []string{"--server", h.url, "--token", h.token} }

func (h *hookServer) released(t *testing.T, commit, rel string) {
	t.Helper()
	h.n++
	at := time.Date(2024, 3, 1, 12, h.n, 0, 0, time.UTC)
	d := &ferry.Deployment{App: "app", Env: "prod", Kind: ferry.DeployPromote, State: ferry.DeploymentSucceeded, Commit: commit,
		Digest: fmt.Sprintf("sha256:%064x", h.n), Release: rel, Replicas: 1, Actor: "test", CreatedAt: at, StartedAt: at, FinishedAt: at}
	if err := h.store.CreateDeployment(t.Context(), d); err != nil {
		t.Fatal(err)
	}
}

// TestPreReceiveHook pushes to a real bare repository guarded by the
// ferry binary as its pre-receive hook: the seed's promote and rollback
// pass, every illegal move of release is refused with the reason, and the
// remote's release stays where it was. The known releases are those of
// ferry's ledger, asked of its API: an RC… tag pushed by hand makes none.
func TestPreReceiveHook(t *testing.T) {
	t.Parallel()
	bin := ferryBinary(t)
	ferrySrv := newHookServer(t)
	dir := t.TempDir()
	bare, work := filepath.Join(dir, "app.git"), filepath.Join(dir, "work")
	gitOK(t, dir, "init", "-q", "--bare", "--initial-branch=master", bare)
	installHook(t, bare, bin, ferrySrv.flags()...)
	gitOK(t, dir, "clone", "-q", bare, work)
	commit := func(msg string) string {
		gitOK(t, work, "commit", "-q", "--allow-empty", "-m", msg)
		return gitOK(t, work, "rev-parse", "HEAD")
	}
	remote := func(ref string) string {
		out, _ := gitTry(bare, "rev-parse", "--verify", "--quiet", ref)
		return out
	}
	// push runs git push in work and reports git's output and whether the
	// push was accepted.
	push := func(args ...string) (string, bool) {
		out, err := gitTry(work, append([]string{"push", "origin"}, args...)...)
		return out, err == nil
	}
	accepted := func(what string, args ...string) string {
		t.Helper()
		out, ok := push(args...)
		if !ok {
			t.Fatalf("%s: git push %s refused, want accepted:\n%s", what, strings.Join(args, " "), out)
		}
		return out
	}
	refused := func(what, reason string, args ...string) {
		t.Helper()
		before := remote("refs/heads/release")
		out, ok := push(args...)
		if ok {
			t.Errorf("%s: git push %s accepted, want refused", what, strings.Join(args, " "))
		}
		if !strings.Contains(out, "remote: ferry: refusing to update") || !strings.Contains(out, reason) {
			t.Errorf("%s: git push says\n%s\nwant a refusal from ferry containing %q", what, out, reason)
		}
		if after := remote("refs/heads/release"); after != before {
			t.Errorf("%s: remote release moved from %.12s to %.12s, want unchanged", what, before, after)
		}
	}

	m1 := commit("m1")
	accepted("master", "master")
	out := accepted("create release on master", "master:release")
	if !strings.Contains(out, "remote: ferry: release → "+m1[:12]+" accepted (create)") {
		t.Errorf("creating release: git push says\n%s\nwant ferry's acceptance", out)
	}
	m2 := commit("m2")
	m3 := commit("m3")
	accepted("master", "master")

	// The seed's promote: merge master into release, push.
	gitOK(t, work, "checkout", "-q", "-b", "release", "origin/release")
	gitOK(t, work, "merge", "-q", "--ff-only", m2)
	if out := accepted("promote", "release"); !strings.Contains(out, "accepted (promote)") {
		t.Errorf("promote: git push says\n%s\nwant ferry's acceptance as a promote", out)
	}
	if remote("refs/heads/release") != m2 {
		t.Fatalf("release = %.12s after promote, want %.12s", remote("refs/heads/release"), m2)
	}

	// A non-fast-forward: a commit not descending from release, forced.
	gitOK(t, work, "checkout", "-q", "-b", "other", m1)
	o1 := commit("o1: not after release")
	refused("non-fast-forward", o1[:12]+" is not a fast-forward of "+m2[:12], "--force", "other:release")
	// A commit off master that fast-forwards release.
	gitOK(t, work, "checkout", "-q", "-b", "feature", m2)
	f1 := commit("f1: on a feature branch")
	accepted("feature branch itself", "feature")
	refused("fast-forward off master", f1[:12]+" is not on master's history", "feature:release")
	// Back to an older, untagged commit of master.
	refused("back to an untagged commit", m1[:12]+" is not a fast-forward of "+m2[:12]+" and not a known release", "--force", m1+":refs/heads/release")
	// Deleting release.
	refused("delete", "may not be deleted", ":release")

	// ferry releases m2 (prod runs it as RC20240301_1200) and pushes its
	// annotated RC tag; release moves on to m3.
	ferrySrv.released(t, m2, "RC20240301_1200")
	gitOK(t, work, "tag", "-a", "-m", "RC20240301_1200: first release", "RC20240301_1200", m2)
	accepted("release tag", "RC20240301_1200")
	gitOK(t, work, "checkout", "-q", "release")
	gitOK(t, work, "merge", "-q", "--ff-only", m3)
	accepted("promote m3", "release")
	// The seed's rollback: git branch -f release <sha>; git push --force.
	gitOK(t, work, "checkout", "-q", "master")
	gitOK(t, work, "branch", "-f", "release", m2)
	if out := accepted("rollback", "release", "--force"); !strings.Contains(out, "accepted (rollback)") || !strings.Contains(out, "RC20240301_1200") {
		t.Errorf("rollback: git push says\n%s\nwant ferry's acceptance as a rollback to RC20240301_1200", out)
	}
	if remote("refs/heads/release") != m2 {
		t.Fatalf("release = %.12s after rollback, want %.12s", remote("refs/heads/release"), m2)
	}
	// A forged release: an annotated RC… tag on master is refused, since
	// the ledger has no such release (before issue 12 the hook took it).
	gitOK(t, work, "tag", "-a", "-m", "forged", "RC20240301_1100", m1)
	refused("a forged release tag", "release tag RC20240301_1100 is not a release of prod in ferry's ledger", "RC20240301_1100")
	if got := remote("refs/tags/RC20240301_1100"); got != "" {
		t.Errorf("the forged tag reached the remote: %.12s", got)
	}
	// Even where such a tag got in some other way (a git admin), prod never
	// ran m1, so release may not go back to it.
	gitOK(t, bare, "fetch", "-q", work, "refs/tags/RC20240301_1100:refs/tags/RC20240301_1100")
	refused("back to a forged release", m1[:12]+" is not a fast-forward of "+m2[:12]+" and not a known release of prod", "--force", m1+":refs/heads/release")
	// The next release's name, pushed before ferry promotes, onto another
	// commit than the one the release runs: refused.
	ferrySrv.released(t, m3, "RC20240301_1300")
	gitOK(t, work, "tag", "-a", "-m", "squatted", "RC20240301_1300", m2)
	refused("a release tag on another commit than its release", "release tag RC20240301_1300 names "+m2[:12]+", but release RC20240301_1300 of prod ran "+m3[:12], "RC20240301_1300")
	gitOK(t, work, "tag", "-d", "RC20240301_1300")

	// Environment tags are ferry's: env/prod names what prod runs (m3,
	// the newest release), and nothing else.
	refused("env/prod on a commit prod does not run", "env/prod is ferry's: it names what prod runs ("+m3[:12]+"), not "+m1[:12], m1+":refs/tags/env/prod")
	accepted("env/prod on what prod runs", m3+":refs/tags/env/prod")
	refused("env/prod deleted", "env/prod may not be deleted", ":refs/tags/env/prod")
	refused("env/dev while dev runs nothing", "dev runs nothing yet", m3+":refs/tags/env/dev")

	// Release tags: annotated, on master, permanent.
	gitOK(t, work, "tag", "RC20240302_0900", m3)
	refused("lightweight release tag", "must be an annotated tag", "RC20240302_0900")
	gitOK(t, work, "tag", "-a", "-m", "off master", "RC20240302_1000", f1)
	refused("release tag off master", "not on master's history", "RC20240302_1000")
	gitOK(t, work, "tag", "-f", "-a", "-m", "moved", "RC20240301_1200", m3)
	refused("moved release tag", "never moves", "--force", "RC20240301_1200")
	refused("deleted release tag", "may not be deleted", ":refs/tags/RC20240301_1200")
	gitOK(t, work, "tag", "-a", "-m", "v1", "v1.0.0", f1)
	accepted("other tags pass", "v1.0.0")

	// master and release in one push: release may follow the new master.
	m4 := commit("m4")
	if out := accepted("master and release together", "--force", m4+":refs/heads/master", m4+":refs/heads/release"); !strings.Contains(out, "accepted (promote)") {
		t.Errorf("master and release together: git push says\n%s\nwant a promote", out)
	}
	// One bad ref refuses the whole push.
	m5 := commit("m5")
	refused("a good master with a bad release", "not on master's history", m5+":refs/heads/master", "--force", f1+":refs/heads/release")
	if remote("refs/heads/master") != m4 {
		t.Errorf("master moved with a refused push")
	}
	// Other branches are not checked, even forced backwards.
	accepted("force-push of another branch", "--force", m1+":refs/heads/feature")
	// A release branch configured by flag.
	installHook(t, bare, bin, append(ferrySrv.flags(), "--branch", "release,stable", "--master", "master", "--env", "prod")...)
	accepted("stable created", m4+":refs/heads/stable")
	refused("stable moved backwards", "not a fast-forward", "--force", m1+":refs/heads/stable")

	// Fail closed: when ferry cannot be asked, a push of release is
	// refused; one that moves no release branch does not ask.
	installHook(t, bare, bin, "--server", "http://127.0.0.1:1", "--token", ferrySrv.token)
	if out, ok := push(m5+":refs/heads/master", m5+":refs/heads/release"); ok || !strings.Contains(out, "cannot check it") {
		t.Errorf("git push of release with ferry unreachable: accepted %v\n%s\nwant refused: it cannot be checked", ok, out)
	}
	accepted("master with ferry unreachable", "master")
}

// TestPreReceiveInput runs the hook command in-process on hand-written
// input: malformed lines, an unreadable repository and known releases
// that cannot be had refuse the push.
func TestPreReceiveInput(t *testing.T) {
	t.Parallel()
	ferrySrv := newHookServer(t)
	dir := t.TempDir()
	bare := filepath.Join(dir, "app.git")
	gitOK(t, dir, "init", "-q", "--bare", "--initial-branch=master", bare)
	hook := func(stdin string, args ...string) (string, int) {
		var stdout, stderr bytes.Buffer
		base := append([]string{"hook", "pre-receive", "--git-dir", bare}, ferrySrv.flags()...)
		err := Run(context.Background(), append(base, args...), strings.NewReader(stdin), &stdout, &stderr, nil)
		code := 0
		if err != nil {
			stderr.WriteString(err.Error())
			code = ExitCode(err)
		}
		return stderr.String(), code
	}
	zero := strings.Repeat("0", 40)
	sha := strings.Repeat("1", 40)
	for _, tc := range []struct {
		name, stdin, want string
		code              int
	}{
		{"empty push", "", "", 0},
		{"other refs only", zero + " " + sha + " refs/heads/feature\n", "", 0},
		{"garbage", "hello\n", "want \"<old> <new> <ref>\"", 1},
		{"short id", "abc " + sha + " refs/heads/release\n", "line 1", 1},
		{"unknown commit", zero + " " + sha + " refs/heads/release\n", "is not a commit of this repository", 1},
	} {
		got, code := hook(tc.stdin)
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Errorf("%s: hook pre-receive <<%q = exit %d, %q; want exit %d with %q", tc.name, tc.stdin, code, got, tc.code, tc.want)
		}
	}
	// A repository that cannot be read: the push is refused, not waved through.
	got, code := hook(zero+" "+sha+" refs/heads/release\n", "--git-dir", filepath.Join(dir, "missing.git"))
	if code == 0 || !strings.Contains(got, "cannot check it") {
		t.Errorf("hook on a missing repository = exit %d, %q; want a refusal saying it cannot check", code, got)
	}
	// Known releases that cannot be had: the push is refused too.
	gitOK(t, dir, "--git-dir="+bare, "update-ref", "refs/heads/master", gitOK(t, dir, "--git-dir="+bare, "commit-tree", "-m", "m1", gitOK(t, dir, "--git-dir="+bare, "mktree")))
	m1 := gitOK(t, dir, "--git-dir="+bare, "rev-parse", "master")
	create := zero + " " + m1 + " refs/heads/release\n"
	if got, code := hook(create); code != 0 || !strings.Contains(got, "accepted (create)") {
		t.Errorf("hook pre-receive creating release on master = exit %d, %q; want accepted", code, got)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown environment", []string{"--env", "staging"}, `unknown environment "staging"`},
		{"no token", []string{"--token", "ferry_nope"}, "cannot check it"},
		{"no server", []string{"--server", "http://127.0.0.1:1"}, "cannot reach the ferry server"},
	} {
		if got, code := hook(create, tc.args...); code == 0 || !strings.Contains(got, "cannot check it") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: hook pre-receive %s = exit %d, %q; want a refusal saying it cannot check, with %q", tc.name, strings.Join(tc.args, " "), code, got, tc.want)
		}
	}
}
