package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/ledger/sqlite"
	"github.com/ferryhq/ferry/server"
)

// liveDemo is a `ferry demo` running in-process for one test.
type liveDemo struct {
	dir, repo                      string // the demo directory and its bare repository
	apiURL, devURL, prodURL, image string // image: the registry repository, host:port/name
	c                              *client.Client
	out                            *syncBuffer
}

// startDemo runs `ferry demo` in a temp dir on free ports until the
// test ends, and returns once it serves dev, with an API client holding
// the admin token the demo stored in the credentials file.
func startDemo(t *testing.T) *liveDemo {
	t.Helper()
	return startDemoWith(t)
}

// startDemoWith is startDemo with more flags for ferry demo.
func startDemoWith(t *testing.T, flags ...string) *liveDemo {
	t.Helper()
	dir := t.TempDir()
	bin := ferryBinary(t) // the demo's pre-receive hook runs it
	// Three spare ports after prod's for the middle stages of --stages.
	ports := testport.Consecutive(t, 7)
	api, reg, dev, prod := ports[0], ports[1], ports[2], ports[3]
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan struct{})
	var runErr error // set before done is closed
	go func() {
		defer close(done)
		runErr = Run(ctx, append([]string{"demo", "--dir", dir, "--app-src", "../examples/birthday-app", "--ferry-binary", bin,
			"--api-port", fmt.Sprint(api), "--registry-port", fmt.Sprint(reg),
			"--dev-port", fmt.Sprint(dev), "--prod-port", fmt.Sprint(prod)}, flags...), strings.NewReader(""), out, out, server.Parts{})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if runErr != nil {
				t.Errorf("demo exited with %v", runErr)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("demo did not stop within 60s of Ctrl-C")
		}
	})
	waitFor(t, 5*time.Minute, "the demo to print its next steps", func() bool {
		select {
		case <-done:
			t.Fatalf("demo ended early: %v\n%s%s", runErr, out.String(), buildLogs(t, dir))
		default:
		}
		return strings.Contains(out.String(), "ferry is running.")
	})
	if want := fmt.Sprintf("(curl http://127.0.0.1:%d/version)", dev); !strings.Contains(out.String(), want) {
		t.Errorf("the demo does not print dev's served address %s:\n%s", want, out.String())
	}
	// The demo made its server the CLI's current one (TestMain points
	// XDG_CONFIG_HOME into a temp dir).
	if path, err := currentServerPath(); err != nil {
		t.Error(err)
	} else if cur, err := readCurrentServer(path); err != nil || cur == nil || cur.Server != fmt.Sprintf("http://127.0.0.1:%d", api) {
		t.Errorf("current-server file after ferry demo = %+v, %v; want the demo's server", cur, err)
	}
	d := &liveDemo{
		dir: dir, repo: filepath.Join(dir, "birthday-app.git"), out: out,
		apiURL:  fmt.Sprintf("http://127.0.0.1:%d", api),
		devURL:  fmt.Sprintf("http://127.0.0.1:%d", dev),
		prodURL: fmt.Sprintf("http://127.0.0.1:%d", prod),
		image:   fmt.Sprintf("127.0.0.1:%d/birthday-app", reg),
	}
	c, err := client.New(d.apiURL)
	if err != nil {
		t.Fatal(err)
	}
	if c.Token, err = findToken("", c.Base); err != nil || c.Token == "" {
		t.Fatalf("the demo's token for %s: %q, %v\n%s", c.Base, c.Token, err, out.String())
	}
	d.c = c
	return d
}

// buildLogs is the last lines of the first builds' logs in the ledger of
// a demo that has stopped, for a failure's message: a build that failed
// says why only there.
func buildLogs(t *testing.T, dir string) string {
	paths, _ := filepath.Glob(filepath.Join(dir, "*", "ledger.db"))
	if len(paths) == 0 {
		return "\n(no ledger.db under " + dir + ")"
	}
	store, err := sqlite.Open(t.Context(), paths[0])
	if err != nil {
		return fmt.Sprintf("\n(the ledger: %v)", err)
	}
	defer store.Close()
	var b strings.Builder
	for id := int64(1); id <= 3; id++ {
		lines, err := store.Logs(t.Context(), id, 0, 10000)
		if err != nil || len(lines) == 0 {
			break
		}
		fmt.Fprintf(&b, "\nbuild %d's log, last lines:\n", id)
		for _, l := range lines[max(0, len(lines)-80):] {
			fmt.Fprintf(&b, "  [%s] %s\n", l.Step, strings.TrimRight(l.Text, "\n"))
		}
	}
	return b.String()
}

// bare runs git in the demo's bare repository.
func (d *liveDemo) bare(t *testing.T, args ...string) string {
	t.Helper()
	return gitOK(t, d.dir, append([]string{"--git-dir=" + d.repo}, args...)...)
}

// envStatus is one environment of `ferry status -o json`, in the CLI's
// documented shape.
type envStatus struct {
	Name, Commit, Digest, Release, State, DeployedBy string
	Replicas                                         struct{ Ready, Desired int }
}

// statusOf runs `ferry status -o json` and returns env's entry.
func (d *liveDemo) statusOf(t *testing.T, env string) envStatus {
	t.Helper()
	stdout, stderr, code := run(t, "status", "-o", "json", "--server", d.apiURL)
	if code != 0 {
		t.Fatalf("ferry status -o json: exit %d: %s", code, stderr)
	}
	var st struct{ Environments []envStatus }
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("ferry status -o json: %v\n%s", err, stdout)
	}
	for _, e := range st.Environments {
		if e.Name == env {
			return e
		}
	}
	t.Fatalf("ferry status -o json has no %s:\n%s", env, stdout)
	return envStatus{}
}

// waitHealthy waits until `ferry status` shows env healthy on commit.
func (d *liveDemo) waitHealthy(t *testing.T, env, commit string, timeout time.Duration) envStatus {
	t.Helper()
	var st envStatus
	waitFor(t, timeout, fmt.Sprintf("%s to be healthy on %.12s", env, commit), func() bool {
		st = d.statusOf(t, env)
		return st.Commit == commit && st.State == "healthy" && versionOf(t, d.urlOf(env)) == commit
	})
	return st
}

func (d *liveDemo) urlOf(env string) string {
	if env == "prod" {
		return d.prodURL
	}
	return d.devURL
}

// newestProd is prod's newest deployment, nil before the first.
func (d *liveDemo) newestProd(t *testing.T) *ferry.Deployment {
	t.Helper()
	ds, err := d.c.Deployments(context.Background(), "prod", 1)
	if err != nil {
		t.Fatalf("prod's deployments: %v", err)
	}
	if len(ds) == 0 {
		return nil
	}
	return ds[0]
}

// released waits until prod runs commit as a release and every place that
// records a release agrees: `ferry status` (release RC…), the registry's
// live tag on prod's digest, the annotated git tag RC… on commit in the
// demo's repository, and env/prod. It returns the release's tag and prod's
// deployment.
func (d *liveDemo) released(t *testing.T, commit string, kind ferry.DeploymentKind) (string, *ferry.Deployment) {
	t.Helper()
	var dep *ferry.Deployment
	waitFor(t, 2*time.Minute, fmt.Sprintf("prod's %s of %.12s to end", kind, commit), func() bool {
		dep = d.newestProd(t)
		return dep != nil && dep.Commit == commit && dep.State.Final()
	})
	if dep.Kind != kind || dep.State != ferry.DeploymentSucceeded || !strings.HasPrefix(dep.Release, "RC") || dep.Actor != "git push" {
		t.Fatalf("prod's newest deployment = %s %s of %.12s, release %q, by %q (%s); want a succeeded %s by git push with an RC… release",
			dep.State, dep.Kind, dep.Commit, dep.Release, dep.Actor, dep.Error, kind)
	}
	rc := dep.Release
	st := d.waitHealthy(t, "prod", commit, time.Minute)
	if st.Release != rc || st.Digest != dep.Digest || st.Replicas.Ready != 2 {
		t.Errorf("ferry status prod = %+v, want release %s on %s, 2 ready", st, rc, dep.Digest)
	}
	waitFor(t, 30*time.Second, "live, "+rc+" and env/prod to follow prod", func() bool {
		live, err := d.tagDigest("live")
		if err != nil || live != dep.Digest {
			return false
		}
		if tagged, err := d.tagDigest(rc); err != nil || tagged != dep.Digest {
			return false
		}
		typ, err := gitTry(d.dir, "--git-dir="+d.repo, "cat-file", "-t", rc)
		if err != nil || typ != "tag" {
			return false
		}
		env, err := gitTry(d.dir, "--git-dir="+d.repo, "rev-parse", "env/prod^{commit}")
		return err == nil && env == commit
	})
	if got := d.bare(t, "rev-parse", rc+"^{commit}"); got != commit {
		t.Errorf("git tag %s is on %.12s, want %.12s", rc, got, commit)
	}
	return rc, dep
}

// TestSeedCommands runs the seed's own release commands against `ferry
// demo`, through its bare repository and the pre-receive hook it
// installed: `git merge <sha>; git push` releases what ran in dev, and
// `git branch -f release <sha>; git push --force` rolls back to an earlier
// release; an orphan commit pushed to release and `ferry promote` of a
// commit that never ran in dev are refused with the reason and leave prod
// as it was. Prod takes load throughout and drops no request.
func TestSeedCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	d := startDemo(t)
	ctx := context.Background()
	first := d.bare(t, "rev-parse", "master")
	d.waitHealthy(t, "dev", first, 3*time.Minute)
	if st := d.statusOf(t, "prod"); st.State != "empty" {
		t.Fatalf("prod before any release = %+v, want empty", st)
	}
	if _, err := gitTry(d.dir, "--git-dir="+d.repo, "rev-parse", "--verify", "--quiet", "refs/heads/release"); err == nil {
		t.Fatalf("the demo's repository has a release branch before any release")
	}

	work := filepath.Join(t.TempDir(), "birthday-app")
	gitOK(t, d.dir, "clone", "-q", d.repo, work)
	push := func(want string, args ...string) string {
		t.Helper()
		out, err := gitTry(work, append([]string{"push"}, args...)...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("git push %s: %v\n%s\nwant %q", strings.Join(args, " "), err, out, want)
		}
		return out
	}

	// The first release: release made from master, dev's commit merged
	// and pushed.
	gitOK(t, work, "checkout", "-q", "-b", "release", "origin/master")
	gitOK(t, work, "merge", "-q", first)
	push("remote: ferry: release → "+first[:12]+" accepted (create)", "origin", "release")
	rc1, _ := d.released(t, first, ferry.DeployPromote)
	t.Logf("first release %s = %.12s", rc1, first)

	// A second commit on master runs in dev, then is released the same way.
	gitOK(t, work, "checkout", "-q", "master")
	if err := os.WriteFile(filepath.Join(work, "CHANGELOG.md"), []byte("a second release\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOK(t, work, "add", "-A")
	gitOK(t, work, "commit", "-q", "-m", "docs: a changelog for the second release")
	second := gitOK(t, work, "rev-parse", "HEAD")
	push("", "-q", "origin", "master")
	d.waitHealthy(t, "dev", second, 3*time.Minute)
	l := startLoad(d.prodURL+"/statusz", 4)
	gitOK(t, work, "checkout", "-q", "release")
	gitOK(t, work, "merge", "-q", second)
	push("remote: ferry: release → "+second[:12]+" accepted (promote)", "origin", "release")
	rc2, _ := d.released(t, second, ferry.DeployPromote)
	if rc2 == rc1 {
		t.Errorf("the second release has the first's tag %s", rc1)
	}
	if notes := d.bare(t, "tag", "-l", "--format=%(contents)", rc2); !strings.Contains(notes, second[:12]) ||
		!strings.Contains(notes, "docs: a changelog for the second release") || strings.Contains(notes, first[:12]+" ") {
		t.Errorf("git tag %s's message:\n%s\nwant the commits since %s: %.12s with its subject, not %.12s", rc2, notes, rc1, second, first)
	} else {
		t.Logf("git tag %s:\n%s", rc2, notes)
	}

	// The seed's rollback: release forced back to the first release.
	gitOK(t, work, "checkout", "-q", "master")
	gitOK(t, work, "branch", "-f", "release", first)
	push("remote: ferry: release → "+first[:12]+" accepted (rollback)", "origin", "release", "--force")
	rcBack, back := d.released(t, first, ferry.DeployRollback)
	if rcBack != rc1 {
		t.Errorf("the rollback runs release %s, want %s", rcBack, rc1)
	}
	if st := d.statusOf(t, "prod"); st.Release != rc1 || st.Commit != first {
		t.Errorf("ferry status prod after the rollback = %+v, want %s on %.12s", st, rc1, first)
	}

	// unchanged asserts prod still runs the rollback and release stays.
	unchanged := func(after string) {
		t.Helper()
		time.Sleep(3 * time.Second) // more than the demo's 2 s poll: a change would have been seen
		if now := d.newestProd(t); now == nil || now.ID != back.ID {
			t.Errorf("after %s prod's newest deployment is %d (%s of %.12s), want still %d", after, now.ID, now.Kind, now.Commit, back.ID)
		}
		if got := versionOf(t, d.prodURL); got != first {
			t.Errorf("after %s prod serves %.12s, want %.12s", after, got, first)
		}
		if got := d.bare(t, "rev-parse", "release"); got != first {
			t.Errorf("after %s release is %.12s, want %.12s", after, got, first)
		}
	}

	// A commit not from master, forced onto release: the hook refuses it.
	gitOK(t, work, "checkout", "-q", "--orphan", "stray")
	gitOK(t, work, "commit", "-q", "-m", "stray: not from master")
	stray := gitOK(t, work, "rev-parse", "HEAD")
	out, err := gitTry(work, "push", "--force", "origin", "stray:release")
	if want := "remote: ferry: refusing to update release: " + stray[:12] + " is not a fast-forward of " + first[:12] + ", not on master's history"; err == nil || !strings.Contains(out, want) {
		t.Errorf("git push --force of an orphan commit to release: %v\n%s\nwant refused: %q", err, out, want)
	}
	t.Logf("git push --force origin stray:release:\n%s", out)
	unchanged("the refused orphan push")

	// ferry promote of a commit that never ran in dev: refused, with why.
	gitOK(t, work, "checkout", "-q", "-b", "feature", "master")
	gitOK(t, work, "commit", "-q", "--allow-empty", "-m", "feature: never built")
	feature := gitOK(t, work, "rev-parse", "HEAD")
	push("", "-q", "origin", "feature")
	_, stderr, code := run(t, "promote", feature, "--server", d.apiURL, "--reason", "seed test")
	if code == 0 || !strings.Contains(stderr, "never ran in dev") || !strings.Contains(stderr, feature[:12]) {
		t.Errorf("ferry promote %.12s: exit %d, %q; want refused: it never ran in dev", feature, code, stderr)
	}
	t.Logf("ferry promote %.12s: exit %d: %s", feature, code, stderr)
	unchanged("the refused ferry promote")
	events, err := d.c.Events(ctx, "promote.refused", 0, 10)
	if err != nil || len(events) == 0 || events[0].Commit != feature || !strings.Contains(events[0].Reason, "never ran in dev") {
		t.Errorf("promote.refused events = %+v, %v; want the refusal of %.12s with its reason", events, err, feature)
	}

	// What ferry would refuse, the hook refuses, with the same sentence
	// (issue 12): a push to release while prod is locked, then of a
	// quarantined commit, though it ran in dev and moves release forward.
	gitOK(t, work, "checkout", "-q", "master")
	if err := os.WriteFile(filepath.Join(work, "CHANGELOG.md"), []byte("a second release\na third change\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOK(t, work, "commit", "-q", "-am", "docs: a third change")
	third := gitOK(t, work, "rev-parse", "HEAD")
	push("", "-q", "origin", "master")
	d.waitHealthy(t, "dev", third, 3*time.Minute)
	hookRefusal := func(what, want string, args ...string) string {
		t.Helper()
		out, err := gitTry(work, append([]string{"push"}, args...)...)
		_, sentence, _ := strings.Cut(out, "remote: ferry: refusing to update ")
		sentence, _, _ = strings.Cut(sentence, "\n")
		if err == nil || !strings.Contains(sentence, want) {
			t.Errorf("%s: git push %s: %v\n%s\nwant refused by ferry's hook: %q", what, strings.Join(args, " "), err, out, want)
		}
		return strings.TrimSpace(sentence)
	}
	sameAsPromote := func(what, hookSaid string) {
		t.Helper()
		_, stderr, code := run(t, "promote", third, "--server", d.apiURL, "--reason", "seed test: "+what)
		if rule := strings.TrimPrefix(hookSaid, "release: "); code == 0 || rule == "" || !strings.Contains(stderr, rule) {
			t.Errorf("%s: ferry promote %.12s: exit %d, %q; want refused with the hook's sentence %q", what, third, code, stderr, rule)
		}
	}
	if _, stderr, code := run(t, "lock", "prod", "--reason", "freeze for the seed test", "--server", d.apiURL); code != 0 {
		t.Fatalf("ferry lock prod: exit %d: %s", code, stderr)
	}
	said := hookRefusal("push during a lock", "prod is locked by", "origin", third+":refs/heads/release")
	t.Logf("git push of release while prod is locked: %s", said)
	unchanged("the push during the lock")
	sameAsPromote("locked", said)
	if _, stderr, code := run(t, "unlock", "prod", "--reason", "freeze over", "--server", d.apiURL); code != 0 {
		t.Fatalf("ferry unlock prod: exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, "quarantine", third, "--reason", "a bad change", "--server", d.apiURL); code != 0 {
		t.Fatalf("ferry quarantine %.12s: exit %d: %s", third, code, stderr)
	}
	said = hookRefusal("push of a quarantined commit", "is quarantined by", "origin", third+":refs/heads/release")
	unchanged("the push of a quarantined commit")
	sameAsPromote("quarantined", said)

	// Release tags and environment tags are ferry's alone: the next
	// release's name made by hand, a release tag moved or deleted, and
	// env/prod set elsewhere are refused, and git keeps ferry's.
	// A name of this minute's form that no release of the test takes
	// (the second release may have this minute's plain name).
	squat := "RC" + time.Now().UTC().Format("20060102_1504") + "_9"
	gitOK(t, work, "tag", "-a", "-m", "squatted", squat, second)
	hookRefusal("a release tag made by hand", "release tag "+squat+" is not a release of prod in ferry's ledger", "origin", squat)
	gitOK(t, work, "tag", "-f", "-a", "-m", "moved", rc1, second)
	hookRefusal("a release tag moved", "release tag "+rc1+" exists and never moves", "--force", "origin", rc1)
	hookRefusal("a release tag deleted", "release tag "+rc1+" may not be deleted", "origin", ":refs/tags/"+rc1)
	hookRefusal("env/prod set by hand", "env/prod is ferry's: it names what prod runs ("+first[:12]+"), not "+second[:12], "--force", "origin", second+":refs/tags/env/prod")
	for ref, want := range map[string]string{"refs/tags/" + rc1 + "^{commit}": first, "refs/tags/env/prod": first} {
		if got := d.bare(t, "rev-parse", ref); got != want {
			t.Errorf("after the refused tag pushes %s = %.12s, want ferry's %.12s", ref, got, want)
		}
	}
	if out, err := gitTry(d.dir, "--git-dir="+d.repo, "rev-parse", "--verify", "--quiet", "refs/tags/"+squat); err == nil {
		t.Errorf("the hand-made release tag %s reached the repository: %s", squat, out)
	}
	unchanged("the refused tag pushes")

	l.finish()
	t.Logf("prod under load across the second release, the rollback and the refusals: %d ok, %d failed", l.ok.Load(), l.failed.Load())
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("prod: %d requests ok, %d failed (first: %s); want none failed", l.ok.Load(), l.failed.Load(), l.firstErr)
	}
}
