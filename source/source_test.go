package source

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// history is a small repository: master c1 → c2, feature c1 → c3, tag v1 at c1.
type history struct {
	up         *upstream
	c1, c2, c3 string
	files      map[string]map[string]string // commit → its files
}

func newHistory(t *testing.T) *history {
	h := &history{up: newUpstream(t), files: map[string]map[string]string{}}
	f1 := map[string]string{"go.mod": "module app\n", "main.go": "package main\n", "run.sh*": "#!/bin/sh\n"}
	h.c1 = h.up.commit("first", f1)
	h.files[h.c1] = f1
	h.up.git("tag", "-a", "-m", "v1", "v1")
	h.up.git("branch", "feature")
	f2 := map[string]string{"go.mod": "module app\n", "main.go": "package main // two\n", "cmd/app/app.go": "package app\n"}
	h.c2 = h.up.commit("second", f2) // run.sh removed
	h.files[h.c2] = f2
	h.up.git("checkout", "--quiet", "feature")
	f3 := map[string]string{"go.mod": "module app\n", "feature.txt": "on a branch\n"}
	h.c3 = h.up.commit("third, on feature", f3)
	h.files[h.c3] = f3
	h.up.git("checkout", "--quiet", "master")
	return h
}

func fetched(t *testing.T, url string) *Repo {
	t.Helper()
	r := Open(url, filepath.Join(t.TempDir(), "cache", "app.git"), nil)
	if err := r.Fetch(t.Context()); err != nil {
		t.Fatalf("Fetch(%s) = %v", url, err)
	}
	return r
}

func TestFetchAndRead(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	for _, tc := range []struct{ name, url string }{
		{"local path", h.up.bare},
		{"file URL", fileURL(h.up.bare)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			r := fetched(t, tc.url)

			heads, err := r.Heads(ctx)
			if want := map[string]string{"master": h.c2, "feature": h.c3}; err != nil || !maps.Equal(heads, want) {
				t.Errorf("Heads() = %v, %v, want %v", heads, err, want)
			}
			if got, err := r.Head(ctx, "master"); got != h.c2 || err != nil {
				t.Errorf("Head(master) = %q, %v, want %q", got, err, h.c2)
			}
			if got, err := r.Head(ctx, "feat"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
				t.Errorf("Head(feat) = %q, %v, want %s", got, err, ferry.ENOTFOUND)
			}

			want := ferry.Commit{SHA: h.c1, Subject: "first", Author: "Ada Lovelace", AuthorEmail: "ada@example.com", Time: baseTime}
			for _, rev := range []string{h.c1, h.c1[:12], "v1", "master~1"} {
				if got, err := r.Commit(ctx, rev); got != want || err != nil {
					t.Errorf("Commit(%s) = %+v, %v, want %+v", rev, got, err, want)
				}
			}
			if got, _ := r.Commit(ctx, "feature"); got.SHA != h.c3 || got.Subject != "third, on feature" || !got.Time.Equal(baseTime.Add(2*time.Minute)) {
				t.Errorf("Commit(feature) = %+v, want %s at %s", got, h.c3, baseTime.Add(2*time.Minute))
			}
			for _, rev := range []string{"nope", strings.Repeat("0", 40), "master~9"} {
				_, err := r.Commit(ctx, rev)
				if rev == "nope" {
					t.Logf("Commit(nope) = %v", err)
				}
				if ferry.ErrorCode(err) != ferry.ENOTFOUND || IsRetryable(err) {
					t.Errorf("Commit(%s) error = %v, want %s, not retryable", rev, err, ferry.ENOTFOUND)
				}
			}
			if _, err := r.Commit(ctx, "--all"); ferry.ErrorCode(err) != ferry.EINVALID {
				t.Errorf("Commit(--all) error = %v, want %s", err, ferry.EINVALID)
			}
		})
	}
}

func TestFetchFollowsRemote(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	ctx := t.Context()
	r := fetched(t, h.up.bare)

	c4 := h.up.commit("fourth", map[string]string{"x": "4"})
	h.up.git("branch", "--quiet", "-D", "feature")
	h.up.git("tag", "v2")
	h.up.push()
	if heads, _ := r.Heads(ctx); heads["master"] != h.c2 {
		t.Fatalf("before Fetch: Heads()[master] = %s, want the cached %s", heads["master"], h.c2)
	}
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	heads, err := r.Heads(ctx)
	if want := map[string]string{"master": c4}; err != nil || !maps.Equal(heads, want) {
		t.Errorf("Heads() after push = %v, %v, want %v (feature pruned)", heads, err, want)
	}
	if got, err := r.Commit(ctx, "v2"); got.SHA != c4 || err != nil {
		t.Errorf("Commit(v2) = %s, %v, want %s", got.SHA, err, c4)
	}
	// The deleted branch's commit stays readable from the cache.
	if got, err := r.Commit(ctx, h.c3); got.SHA != h.c3 || err != nil {
		t.Errorf("Commit(%s) after branch deletion = %s, %v", h.c3, got.SHA, err)
	}
}

func TestReadBeforeFetch(t *testing.T) {
	t.Parallel()
	r := Open(t.TempDir(), filepath.Join(t.TempDir(), "app.git"), nil)
	_, err := r.Heads(t.Context())
	if err == nil || !IsRetryable(err) || !strings.Contains(err.Error(), "not been fetched") {
		t.Errorf("Heads() before Fetch = %v, want a retryable 'not been fetched' error", err)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such-repo.git")
	cases := []struct{ name, url, stderr string }{
		{"missing path", missing, "does not appear to be a git repository"},
		{"missing file URL", fileURL(missing), "does not appear to be a git repository"},
		{"refused https", "https://127.0.0.1:1/x.git", "Failed to connect"},
		{"credentials masked", "https://ferry:s3cr3t-t0ken@127.0.0.1:1/x.git", "Failed to connect"},
	}
	if _, err := exec.LookPath("ssh"); err == nil {
		cases = append(cases, struct{ name, url, stderr string }{"unresolvable scp-like", "git@ferry-test.invalid:team/app.git", "Could not read from remote repository"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			r := Open(tc.url, filepath.Join(parent, "app.git"), nil)
			err := r.Fetch(t.Context())
			if err == nil {
				t.Fatalf("Fetch(%s) = nil, want an error", tc.url)
			}
			msg := err.Error()
			t.Logf("Fetch(%s) = %v", tc.url, err)
			if !IsRetryable(err) {
				t.Errorf("IsRetryable(Fetch(%s)) = false, want true: %v", tc.url, err)
			}
			if !strings.Contains(msg, redactURL(tc.url)) || !strings.Contains(msg, "git ") || !strings.Contains(msg, tc.stderr) {
				t.Errorf("Fetch(%s) error = %q, want the URL, the git command and %q", tc.url, msg, tc.stderr)
			}
			if strings.Contains(msg, "s3cr3t") {
				t.Errorf("Fetch error shows the password: %q", msg)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("failed first Fetch left %v in the cache's parent", left)
			}
		})
	}
}

// A remote that accepts connections and never answers: the fetch must end
// at its timeout, as a retryable error, with git and its helpers killed.
func TestFetchTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	r := Open("http://"+ln.Addr().String()+"/app.git", filepath.Join(t.TempDir(), "app.git"), nil)
	r.FetchTimeout = 300 * time.Millisecond
	start := time.Now()
	err = r.Fetch(t.Context())
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Fetch took %s with a 300ms timeout", took)
	}
	if err == nil || !IsRetryable(err) || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Errorf("Fetch(silent remote) = %v, want a retryable timeout", err)
	}
}

func TestFetchCanceled(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := Open(h.up.bare, filepath.Join(t.TempDir(), "app.git"), nil)
	err := r.Fetch(ctx)
	if !errors.Is(err, context.Canceled) || IsRetryable(err) {
		t.Errorf("Fetch(canceled) = %v, want context.Canceled, not retryable", err)
	}
}

// Variables that select another repository (set when ferry runs inside a
// git hook) must not leak into the cache's commands.
func TestIgnoresInheritedGitDir(t *testing.T) {
	h := newHistory(t)
	t.Setenv("GIT_DIR", h.up.work+"/.git")
	t.Setenv("GIT_WORK_TREE", h.up.work)
	r := fetched(t, h.up.bare)
	if got, err := r.Head(t.Context(), "feature"); got != h.c3 || err != nil {
		t.Errorf("Head(feature) with GIT_DIR set = %q, %v, want %q", got, err, h.c3)
	}
}

func TestIsAncestor(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	r := fetched(t, h.up.bare)
	for _, tc := range []struct {
		a, d string
		want bool
	}{
		{h.c1, h.c2, true},
		{h.c2, h.c1, false},
		{h.c1, h.c1, true},
		{h.c2, h.c3, false}, // siblings
		{h.c1, "feature", true},
		{"v1", "master", true},
	} {
		if got, err := r.IsAncestor(t.Context(), tc.a, tc.d); got != tc.want || err != nil {
			t.Errorf("IsAncestor(%.7s, %.7s) = %v, %v, want %v", tc.a, tc.d, got, err, tc.want)
		}
	}
	if _, err := r.IsAncestor(t.Context(), "nope", h.c1); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("IsAncestor(nope, c1) error = %v, want %s", err, ferry.ENOTFOUND)
	}
}

func TestLog(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	c4 := h.up.commit("fourth", map[string]string{"x": "4"})
	r := fetched(t, h.up.bare)
	shas := func(cs []ferry.Commit) []string {
		var s []string
		for _, c := range cs {
			s = append(s, c.SHA)
		}
		return s
	}
	for _, tc := range []struct {
		from, to string
		want     []string
	}{
		{h.c1, c4, []string{c4, h.c2}},
		{"", "master", []string{c4, h.c2, h.c1}},
		{"master", "feature", []string{h.c3}},
		{c4, h.c1, nil},
		{c4, c4, nil},
	} {
		got, err := r.Log(t.Context(), tc.from, tc.to)
		if err != nil || !slices.Equal(shas(got), tc.want) {
			t.Errorf("Log(%.7s, %.7s) = %.7s, %v, want %.7s", tc.from, tc.to, shas(got), err, tc.want)
		}
	}
	got, _ := r.Log(t.Context(), "", h.c2)
	if len(got) != 2 || got[1].Subject != "first" || got[0].Author != "Ada Lovelace" || !got[0].Time.Equal(baseTime.Add(time.Minute)) {
		t.Errorf("Log('', c2) = %+v, want second then first with authors and times", got)
	}
	if _, err := r.Log(t.Context(), "nope", h.c2); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Log(nope, c2) error = %v, want %s", err, ferry.ENOTFOUND)
	}
}

// TestBetween: the commits a branch move brought, newest first, capped,
// and for a reset (from not an ancestor of to) only what to adds.
func TestBetween(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	c4 := h.up.commit("fourth", map[string]string{"x": "4"})
	c5 := h.up.commit("fifth", map[string]string{"x": "5"})
	r := fetched(t, h.up.bare)
	for _, tc := range []struct {
		from, to string
		max      int
		want     []string
		more     bool
	}{
		{h.c1, c5, 10, []string{c5, c4, h.c2}, false},
		{h.c1, c5, 3, []string{c5, c4, h.c2}, false},
		{h.c1, c5, 2, []string{c5, c4}, true},
		{c4, c5, 1, []string{c5}, false},
		{c5, c4, 10, nil, false},                      // reset back: nothing new
		{h.c3, c5, 10, []string{c5, c4, h.c2}, false}, // from another line
		{c5, c5, 10, nil, false},
	} {
		got, more, err := r.Between(t.Context(), tc.from, tc.to, tc.max)
		var shas []string
		for _, c := range got {
			shas = append(shas, c.SHA)
		}
		if err != nil || !slices.Equal(shas, tc.want) || more != tc.more {
			t.Errorf("Between(%.7s, %.7s, %d) = %.7s, %v, %v; want %.7s, %v", tc.from, tc.to, tc.max, shas, more, err, tc.want, tc.more)
		}
	}
	if got, _, _ := r.Between(t.Context(), h.c2, c4, 5); len(got) != 1 || got[0].Subject != "fourth" || got[0].Author != "Ada Lovelace" {
		t.Errorf("Between(c2, c4) = %+v, want fourth with its subject and author", got)
	}
	for _, tc := range []struct {
		from string
		max  int
		code string
	}{{"", 5, ferry.EINVALID}, {h.c1, 0, ferry.EINVALID}, {"nope", 5, ferry.ENOTFOUND}} {
		if _, _, err := r.Between(t.Context(), tc.from, c5, tc.max); ferry.ErrorCode(err) != tc.code {
			t.Errorf("Between(%q, c5, %d) error = %v, want %s", tc.from, tc.max, err, tc.code)
		}
	}
}

func TestCheckout(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	ctx := t.Context()
	r := fetched(t, h.up.bare)
	work := t.TempDir()

	// Three commits checked out at once, while a fetch runs.
	var wg sync.WaitGroup
	dirs := map[string]string{}
	errs := make(chan error, 4)
	for i, sha := range []string{h.c1, h.c2, h.c3} {
		dir := filepath.Join(work, string(rune('a'+i)), "src") // same base name on purpose
		dirs[sha] = dir
		wg.Go(func() { errs <- r.Checkout(ctx, sha, dir) })
	}
	wg.Go(func() { errs <- r.Fetch(ctx) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Checkout/Fetch: %v", err)
		}
	}
	for sha, dir := range dirs {
		if got, want := treeFiles(t, dir), h.files[sha]; !maps.Equal(got, want) {
			t.Errorf("Checkout(%.7s) files = %v, want %v", sha, got, want)
		}
		if got := gitIn(t, dir, "rev-parse", "HEAD"); got != sha {
			t.Errorf("git rev-parse HEAD in checkout of %.7s = %s", sha, got)
		}
		if got := gitIn(t, dir, "status", "--porcelain"); got != "" {
			t.Errorf("git status in checkout of %.7s = %q, want clean", sha, got)
		}
	}

	if err := r.Checkout(ctx, h.c1, dirs[h.c2]); err == nil {
		t.Errorf("Checkout into a non-empty directory = nil, want an error")
	}
	if err := r.Checkout(ctx, strings.Repeat("ab", 20), filepath.Join(work, "x")); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Checkout(unknown commit) = %v, want %s", err, ferry.ENOTFOUND)
	}

	for sha, dir := range dirs {
		os.WriteFile(filepath.Join(dir, "build-output"), []byte("x"), 0o644) // the build left something
		if err := r.RemoveCheckout(ctx, dir); err != nil {
			t.Errorf("RemoveCheckout(%.7s) = %v", sha, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("after RemoveCheckout(%.7s): stat = %v, want not exist", sha, err)
		}
	}
	if err := r.RemoveCheckout(ctx, dirs[h.c1]); err != nil {
		t.Errorf("RemoveCheckout twice = %v, want nil", err)
	}
	if got := gitIn(t, "", "--git-dir="+r.dir, "for-each-ref", "--format=%(refname)"); got != "refs/heads/feature\nrefs/heads/master\nrefs/tags/v1" {
		t.Errorf("cache refs after checkouts = %q, want only the remote's", got)
	}
}

func TestCheckoutIsAClone(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	ctx := t.Context()
	r := fetched(t, fileURL(h.up.bare))
	dir := filepath.Join(t.TempDir(), "src")
	if err := r.Checkout(ctx, h.c2, dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"describe", "--tags"}, "v1-1-g" + h.c2[:7]},
		{[]string{"log", "--format=%s"}, "second\nfirst"},
		{[]string{"remote", "get-url", "origin"}, r.dir}, // the cache, not the remote
	} {
		if got := gitIn(t, dir, tc.args...); got != tc.want {
			t.Errorf("git %s in checkout = %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	if hooks, err := os.ReadDir(filepath.Join(dir, ".git", "hooks")); err == nil && len(hooks) > 0 {
		t.Errorf("checkout has hooks %v, want none", hooks)
	}
	// A failed checkout leaves nothing behind.
	bad := filepath.Join(t.TempDir(), "bad")
	os.MkdirAll(filepath.Join(bad, "x"), 0o755)
	if err := r.Checkout(ctx, h.c1, bad); err == nil {
		t.Errorf("Checkout into non-empty %s = nil, want an error", bad)
	}
	if _, err := os.Stat(filepath.Join(bad, "x")); err != nil {
		t.Errorf("failed Checkout touched the existing directory: %v", err)
	}
}

func TestConcurrentFetchAndRead(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	r := fetched(t, h.up.bare)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := r.Fetch(t.Context()); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if got, err := r.Head(t.Context(), "master"); got != h.c2 || err != nil {
				t.Errorf("Head(master) during fetches = %s, %v", got, err)
			}
		})
	}
	wg.Wait()
}

func TestRemoteFor(t *testing.T) {
	t.Parallel()
	wd, _ := os.Getwd()
	for _, tc := range []struct{ in, want string }{
		{"https://git.example.com/team/app.git", "https://git.example.com/team/app.git"},
		{"ssh://git@host:22/team/app.git", "ssh://git@host:22/team/app.git"},
		{"file:///srv/git/app.git", "file:///srv/git/app.git"},
		{"git@github.com:team/app.git", "git@github.com:team/app.git"},
		{"/srv/git/app.git", "/srv/git/app.git"},
		{"repos/app.git", filepath.Join(wd, "repos/app.git")},
		{"./odd:name", filepath.Join(wd, "odd:name")},
	} {
		if got := remoteFor(tc.in); got != tc.want {
			t.Errorf("remoteFor(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Fetches that receive objects while worktrees are being added: git's
// connectivity check must never see a half-made worktree.
func TestCheckoutDuringFetch(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	ctx := t.Context()
	r := fetched(t, h.up.bare)
	work := t.TempDir()
	for round := range 8 {
		h.up.commit(fmt.Sprintf("round %d", round), map[string]string{"n": fmt.Sprint(round)})
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := r.Fetch(ctx); err != nil {
				t.Errorf("round %d: Fetch = %v", round, err)
			}
		})
		for i, sha := range []string{h.c1, h.c2, h.c3} {
			dir := filepath.Join(work, fmt.Sprintf("%d-%d", round, i))
			wg.Go(func() {
				if err := r.Checkout(ctx, sha, dir); err != nil {
					t.Errorf("round %d: Checkout(%.7s) = %v", round, sha, err)
				}
				if err := r.RemoveCheckout(ctx, dir); err != nil {
					t.Errorf("round %d: RemoveCheckout = %v", round, err)
				}
			})
		}
		wg.Wait()
	}
}

func TestTrimStderr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"fatal: '/x' does not appear to be a git repository\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n",
			"fatal: '/x' does not appear to be a git repository; fatal: Could not read from remote repository."},
		{"ssh: Could not resolve hostname h: Name or service not known\r\nfatal: Could not read from remote repository.\n",
			"ssh: Could not resolve hostname h: Name or service not known; fatal: Could not read from remote repository."},
		{"error: RPC failed; curl 92 HTTP/2 stream 0 was not closed cleanly\nerror: 4 bytes of body are still expected\nfetch-pack: unexpected disconnect while reading sideband packet\n",
			"error: RPC failed; curl 92 HTTP/2 stream 0 was not closed cleanly; error: 4 bytes of body are still expected; fetch-pack: unexpected disconnect while reading sideband packet"},
		{strings.Repeat("x", 3000), strings.Repeat("x", maxStderr) + " …"},
	} {
		if got := trimStderr(tc.in); got != tc.want {
			t.Errorf("trimStderr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, in, want string }{
		{"https://ferry:p%40ss@host/x.git", "fatal: unable to access 'https://ferry:p%40ss@host/x.git/'", "fatal: unable to access 'https://ferry:xxxxx@host/x.git/'"},
		{"https://ferry:p%40ss@host/x.git", "password p@ss rejected", "password xxxxx rejected"},
		{"https://token@host/x.git", "https://token@host/x.git", "https://token@host/x.git"}, // a user name alone is not masked
		{"git@host:x.git", "git@host:x.git", "git@host:x.git"},
	} {
		if got := redacter(tc.url)(tc.in); got != tc.want {
			t.Errorf("redacter(%q)(%q) = %q, want %q", tc.url, tc.in, got, tc.want)
		}
	}
	if got, want := redactURL("https://ferry:secret@host/x.git"), "https://ferry:xxxxx@host/x.git"; got != want {
		t.Errorf("redactURL = %q, want %q", got, want)
	}
}

// The per-build cost of the source: a fetch with nothing new (every poll),
// a checkout of 200 files and its removal (every build), a head lookup.
func BenchmarkSource(b *testing.B) {
	up := newUpstream(b)
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("pkg%d/file%d.go", i%20, i)] = strings.Repeat("// line\n", 100)
	}
	sha := up.commit("many files", files)
	r := Open(up.bare, filepath.Join(b.TempDir(), "app.git"), nil)
	ctx := b.Context()
	if err := r.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("fetch-noop", func(b *testing.B) {
		for b.Loop() {
			if err := r.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("checkout+remove", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "src")
		for b.Loop() {
			if err := r.Checkout(ctx, sha, dir); err != nil {
				b.Fatal(err)
			}
			if err := r.RemoveCheckout(ctx, dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("head", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.Head(ctx, "master"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestHeadsReadOncePerWrite checks that the branch heads are read from
// git once and then kept until a fetch or SetRef writes the refs: with no
// git on PATH they are still answered, and after each write they are the
// new ones. (Not parallel: it changes PATH.)
func TestHeadsReadOncePerWrite(t *testing.T) {
	h := newHistory(t)
	ctx := t.Context()
	r := fetched(t, h.up.bare)
	if got, err := r.Head(ctx, "master"); got != h.c2 || err != nil {
		t.Fatalf("Head(master) = %q, %v, want %q", got, err, h.c2)
	}

	path := os.Getenv("PATH")
	t.Setenv("PATH", t.TempDir()) // no git
	if _, err := r.Commit(ctx, h.c1); err == nil {
		t.Fatal("Commit without git on PATH succeeded: the test cannot tell a kept read from a new one")
	}
	if got, err := r.Head(ctx, "master"); got != h.c2 || err != nil {
		t.Errorf("Head(master) without git = %q, %v, want the kept %q", got, err, h.c2)
	}
	if got, err := r.Head(ctx, "feat"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Head(feat) without git = %q, %v, want %s", got, err, ferry.ENOTFOUND)
	}
	heads, err := r.Heads(ctx)
	if want := map[string]string{"master": h.c2, "feature": h.c3}; err != nil || !maps.Equal(heads, want) {
		t.Errorf("Heads() without git = %v, %v, want %v", heads, err, want)
	}
	heads["master"] = h.c1 // a caller's copy: the kept heads do not change
	if got, _ := r.Head(ctx, "master"); got != h.c2 {
		t.Errorf("Head(master) after a caller changed its Heads map = %q, want %q", got, h.c2)
	}
	t.Setenv("PATH", path)

	c4 := h.up.commit("fourth", map[string]string{"x": "4"})
	h.up.push()
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Head(ctx, "master"); got != c4 || err != nil {
		t.Errorf("Head(master) after Fetch = %q, %v, want %q", got, err, c4)
	}
	if err := r.SetRef(ctx, "refs/heads/master", h.c2, c4); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Head(ctx, "master"); got != h.c2 || err != nil {
		t.Errorf("Head(master) after SetRef = %q, %v, want %q", got, err, h.c2)
	}
}
