package release

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/source"
)

// repo is a real git repository for the rules: a work tree and the bare
// repository it pushes to.
//
//	master:  m1 ─ m2 ─ m3 ─ m4
//	               └─ f1            (feature)
//	x1                              (side: an orphan commit, off master)
//
// The ledger knows two releases (known): RC20240301_1200 on m2 and
// RC20240302_0900 on x1, which also carry annotated tags. m1 carries a
// lightweight tag named like a release, RC20240101_0000, and an annotated
// one, RC20240201_0000, that no deployment ever carried: neither makes m1
// a known release.
type repo struct {
	t                      *testing.T
	work, bare             string
	m1, m2, m3, m4, f1, x1 string
	n                      int
}

func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = testEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// testEnv is the environment for git in tests: a fixed identity, no user
// or system configuration, and no variable that would point git elsewhere.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Charles Babbage", "GIT_COMMITTER_EMAIL=charles@example.com")
}

func (r *repo) git(args ...string) string { r.t.Helper(); return gitIn(r.t, r.work, args...) }

func (r *repo) commit(subject string) string {
	r.t.Helper()
	r.n++
	date := time.Date(2024, 3, 1, 12, r.n, 0, 0, time.UTC).Format(time.RFC3339)
	cmd := exec.Command("git", "commit", "--quiet", "--allow-empty", "-m", subject)
	cmd.Dir = r.work
	cmd.Env = append(testEnv(), "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date)
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git commit: %v\n%s", err, out)
	}
	return r.git("rev-parse", "HEAD")
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	dir := t.TempDir()
	r := &repo{t: t, work: filepath.Join(dir, "work"), bare: filepath.Join(dir, "app.git")}
	gitIn(t, "", "init", "--quiet", "--bare", "--initial-branch=master", r.bare)
	gitIn(t, "", "init", "--quiet", "--initial-branch=master", r.work)
	r.git("remote", "add", "origin", r.bare)
	r.m1 = r.commit("m1: first")
	r.m2 = r.commit("m2: second")
	r.git("checkout", "--quiet", "-b", "feature")
	r.f1 = r.commit("f1: on a feature branch")
	r.git("checkout", "--quiet", "master")
	r.m3 = r.commit("m3: third")
	r.m4 = r.commit("m4: fourth")
	r.git("checkout", "--quiet", "--orphan", "side")
	r.x1 = r.commit("x1: a release made off master")
	r.git("checkout", "--quiet", "master")
	r.git("tag", "-a", "-m", "release", "RC20240301_1200", r.m2)
	r.git("tag", "-a", "-m", "release", "RC20240302_0900", r.x1)
	r.git("tag", "RC20240101_0000", r.m1)
	r.git("tag", "-a", "-m", "forged", "RC20240201_0000", r.m1)
	r.git("branch", "release", r.m3)
	r.git("push", "--quiet", "origin", "master", "feature", "side", "release", "--tags")
	return r
}

// implementations returns every Git the rules run on, all reading r.
func (r *repo) implementations(t *testing.T) map[string]Git {
	cache := source.Open(r.bare, filepath.Join(t.TempDir(), "cache.git"), nil)
	if err := cache.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	return map[string]Git{"GitDir": GitDir{Path: r.bare}, "source.Repo": cache}
}

// known are the releases the ledger knows of r, newest first.
func (r *repo) known() []Known {
	return []Known{{Release: "RC20240302_0900", Commit: r.x1}, {Release: "RC20240301_1200", Commit: r.m2}}
}

// check is what both callers do: read the facts of m from g, add the
// environment and its known releases, and classify.
func check(ctx context.Context, g Git, m Move, mainline string, known []Known) (Verdict, error) {
	f, err := Observe(ctx, g, m, mainline)
	if err != nil {
		return Verdict{}, err
	}
	f.Env, f.Known = "prod", known
	return Classify(m, f), nil
}

const unknown = "0123456789abcdef0123456789abcdef01234567"

// TestCheck classifies moves of release on a real repository, the facts
// read by Observe through each Git the callers use.
func TestCheck(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	impls := r.implementations(t)
	type want struct {
		allowed bool
		kind    Kind
		release string
		reason  string // a fragment of the reason
	}
	for _, tc := range []struct {
		name, old, new, mainline string
		want                     want
	}{
		{"promote: fast-forward along master", r.m3, r.m4, "master", want{true, Promote, "", "fast-forward of"}},
		{"promote several commits", r.m1, r.m4, "master", want{true, Promote, "", "along master"}},
		{"no change", r.m3, r.m3, "master", want{true, Unchanged, "", "stays"}},
		{"rollback to a release on master", r.m4, r.m2, "master", want{true, Rollback, "RC20240301_1200", "release RC20240301_1200"}},
		{"rollback to a release off master", r.m4, r.x1, "master", want{true, Rollback, "RC20240302_0900", "release RC20240302_0900"}},
		{"create on master", "", r.m2, "master", want{true, Create, "", "on master's history"}},
		{"create on master, zero old", Zero, r.m4, "master", want{true, Create, "", "created at"}},
		{"create at a release off master", Zero, r.x1, "master", want{true, Create, "RC20240302_0900", ""}},
		{"back to an untagged commit", r.m4, r.m3, "master", want{false, "", "", "is not a fast-forward of " + r.m4[:12] + " and not a known release"}},
		{"back to a lightweight RC tag", r.m3, r.m1, "master", want{false, "", "", "not a known release"}},
		{"back to an annotated RC tag the ledger does not know", r.m4, r.m1, "master", want{false, "", "", "and not a known release of prod"}},
		{"fast-forward off master", r.m2, r.f1, "master", want{false, "", "", "is not on master's history (only commits of master are released)"}},
		{"sideways to a feature commit", r.m3, r.f1, "master", want{false, "", "", "not a fast-forward of " + r.m3[:12] + ", not on master's history"}},
		{"create off master", Zero, r.f1, "master", want{false, "", "", "not on master's history and not a known release"}},
		{"delete", r.m3, Zero, "master", want{false, "", "", "may not be deleted"}},
		{"unknown commit", r.m3, unknown, "master", want{false, "", "", "is not a commit of this repository"}},
		{"no mainline: forward refused", r.m3, r.m4, "trunk", want{false, "", "", "trunk does not exist"}},
		{"no mainline: unknown commit", r.m3, unknown, "trunk", want{false, "", "", "is not a commit of this repository"}},
		{"no mainline: rollback allowed", r.m4, r.m2, "trunk", want{true, Rollback, "RC20240301_1200", ""}},
		{"other mainline", r.m2, r.f1, "feature", want{true, Promote, "", "along feature"}},
	} {
		for impl, g := range impls {
			m := Move{Old: tc.old, New: tc.new}
			got, err := check(t.Context(), g, m, tc.mainline, r.known())
			if err != nil {
				t.Errorf("%s: %s: Check(%.7s → %.7s) error = %v", impl, tc.name, tc.old, tc.new, err)
				continue
			}
			w := tc.want
			if got.Allowed != w.allowed || got.Kind != w.kind || got.Release != w.release || !strings.Contains(got.Reason, w.reason) {
				t.Errorf("%s: %s: Check(%.7s → %.7s) = %+v, want allowed=%v kind=%q release=%q reason containing %q",
					impl, tc.name, tc.old, tc.new, got, w.allowed, w.kind, w.release, w.reason)
			}
		}
	}
}

func TestCheckBadInput(t *testing.T) {
	g := GitDir{Path: t.TempDir()} // never reached
	for _, m := range []Move{{Old: "abc", New: Zero}, {Old: Zero, New: "master"}, {Old: Zero, New: ""}, {Old: strings.ToUpper(unknown), New: unknown}} {
		if _, err := Observe(t.Context(), g, m, "master"); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("Observe(%+v) error = %v, want EINVALID", m, err)
		}
		if v := Classify(m, MoveFacts{}); v.Allowed {
			t.Errorf("Classify(%+v) = %+v, want refused", m, v)
		}
	}
}

// broken is a Git whose every read fails, as when git cannot run.
type broken struct{ err error }

func (b broken) Head(context.Context, string) (string, error)             { return "", b.err }
func (b broken) IsAncestor(context.Context, string, string) (bool, error) { return false, b.err }

func TestCheckGitFails(t *testing.T) {
	boom := errors.New("git: boom")
	_, err := Observe(t.Context(), broken{boom}, Move{Old: unknown, New: strings.Repeat("1", 40)}, "master")
	if !errors.Is(err, boom) {
		t.Errorf("Observe with a failing git = %v, want the git error (never a verdict)", err)
	}
	_, err = ObserveTag(t.Context(), broken{boom}, TagMove{Name: "RC20240301_1200", New: unknown, Annotated: true, Commit: unknown}, "master")
	if !errors.Is(err, boom) {
		t.Errorf("ObserveTag with a failing git = %v, want the git error", err)
	}
	// A missing git directory is an error too, not a refusal or a pass.
	_, err = Observe(t.Context(), GitDir{Path: filepath.Join(t.TempDir(), "nope.git")}, Move{Old: unknown, New: strings.Repeat("1", 40)}, "master")
	if err == nil {
		t.Errorf("Observe on a missing repository = nil error, want one")
	}
}

func TestCheckTag(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	g := GitDir{Path: r.bare}
	tagObject := func(name string) string { return r.git("rev-parse", "refs/tags/"+name) }
	// An annotated tag object made but not pushed: what a pusher sends.
	r.git("tag", "-a", "-m", "new release", "RC20240401_1000", r.m4)
	r.git("tag", "-a", "-m", "off master", "RC20240401_1100", r.f1)
	r.git("push", "--quiet", "origin", "feature", "RC20240401_1000", "RC20240401_1100")
	newTag, offMaster := tagObject("RC20240401_1000"), tagObject("RC20240401_1100")
	old := tagObject("RC20240301_1200")

	peel := func(obj string) (bool, string) {
		a, c, err := g.Peel(t.Context(), obj)
		if err != nil {
			t.Fatalf("Peel(%.7s) = %v", obj, err)
		}
		return a, c
	}
	if a, c := peel(newTag); !a || c != r.m4 {
		t.Errorf("Peel(annotated tag) = %v, %.7s, want true, %.7s", a, c, r.m4)
	}
	if a, c := peel(r.m1); a || c != r.m1 {
		t.Errorf("Peel(commit) = %v, %.7s, want false, %.7s", a, c, r.m1)
	}

	for _, tc := range []struct {
		name    string
		move    TagMove
		allowed bool
		reason  string
	}{
		{"new annotated tag on master", TagMove{Name: "RC20240401_1000", New: newTag, Annotated: true, Commit: r.m4}, true, "release tag RC20240401_1000 on"},
		{"lightweight", TagMove{Name: "RC20240401_1200", New: r.m4, Commit: r.m4}, false, "must be an annotated tag"},
		{"off master", TagMove{Name: "RC20240401_1100", New: offMaster, Annotated: true, Commit: r.f1}, false, "not on master's history"},
		{"moved", TagMove{Name: "RC20240301_1200", Old: old, New: newTag, Annotated: true, Commit: r.m4}, false, "never moves"},
		{"deleted", TagMove{Name: "RC20240301_1200", Old: old, New: Zero}, false, "may not be deleted"},
		{"unknown commit", TagMove{Name: "RC20240401_1300", New: unknown, Annotated: true, Commit: unknown}, false, "not a commit of this repository"},
		{"names no commit", TagMove{Name: "RC20240401_1300", New: unknown, Annotated: true}, false, "must name a commit"},
		{"not a release tag", TagMove{Name: "v1.2.3", Old: old, New: Zero}, true, "not a release tag"},
	} {
		f, err := ObserveTag(t.Context(), g, tc.move, "master")
		f.Known = []Known{{Release: "RC20240401_1000", Commit: r.m4}}
		got := ClassifyTag(tc.move, f)
		if err != nil || got.Allowed != tc.allowed || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: ClassifyTag(%+v) = %+v, %v, want allowed=%v, reason containing %q", tc.name, tc.move, got, err, tc.allowed, tc.reason)
		}
	}
}
