// Package source reads an application's git repository through the git
// command line, so that the user's ssh configuration, agent and credential
// helpers apply exactly as they do in a terminal.
//
// A Repo keeps a fetch cache: a bare mirror of the remote's branches
// (refs/heads/*) and tags (refs/tags/*) in a directory of its own. Fetch
// brings it up to date; every read (heads, commits, ancestry, logs) and every
// checkout is served from the cache, never from the network. A checkout is
// a shared clone of the cache, detached at one commit. The cache never
// prunes unreachable objects, so a commit once fetched stays readable (and
// buildable, and deployable on rollback) after a force-push removed it
// from every branch.
//
// A Poller watches branches: it fetches at an interval, or at once when
// triggered (by a webhook), and reports each new head. Fetch failures are
// retried with exponential backoff and reported, so an unreachable
// repository is visible rather than silent.
//
// Errors name the git command and carry git's trimmed standard error;
// IsRetryable tells transient failures (network, unreachable remote,
// timeouts) from permanent ones, and unknown revisions are ferry.ENOTFOUND.
package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry"
)

// Default timeouts for one git command.
const (
	DefaultTimeout      = time.Minute
	DefaultFetchTimeout = 10 * time.Minute
)

// Repo is one remote repository and its fetch cache. Its methods may be
// called from several goroutines: fetches are serialised; reads and
// checkouts run concurrently with each other and with a fetch.
type Repo struct {
	// Timeout bounds each git command other than a fetch, FetchTimeout each
	// fetch (the first one copies the whole history). Set them before the
	// Repo is used; zero means the defaults.
	Timeout      time.Duration
	FetchTimeout time.Duration

	url    string // as given, may hold credentials
	remote string // what git is told: local paths made absolute
	dir    string // the bare mirror
	logger *slog.Logger
	redact func(string) string

	fetchMu sync.Mutex

	// refsGen counts the writes to the cache's refs begun and ended (each
	// under fetchMu, by lockRefs): odd while one is under way. heads is
	// the branch heads read at generation headsGen, so that Head and Heads,
	// asked on every status call, do not start git while no write
	// happened since.
	refsGen  atomic.Uint64
	headsMu  sync.Mutex
	headsGen uint64
	heads    map[string]string // nil: not read yet
}

// lockRefs takes fetchMu for a write to the cache's refs and marks the
// heads read so far as old; the function it returns ends the write. It
// clears the cache's stale locks first (clearStaleLocks).
func (r *Repo) lockRefs() (unlock func()) {
	r.fetchMu.Lock()
	r.clearStaleLocks()
	r.refsGen.Add(1)
	return func() {
		r.refsGen.Add(1)
		r.fetchMu.Unlock()
	}
}

// Open returns the repository at url with its fetch cache in cacheDir,
// which is the mirror itself (created by the first Fetch; keep one
// directory per repository). url may be a local path, a file://, https://
// or ssh:// URL, or scp-like ("git@host:team/app.git"). Open does no I/O.
func Open(url, cacheDir string, logger *slog.Logger) *Repo {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Repo{
		url:    url,
		remote: remoteFor(url),
		dir:    filepath.Clean(cacheDir),
		redact: redacter(url),
	}
	r.logger = logger.With("repo", r.URL())
	if abs, err := filepath.Abs(r.dir); err == nil {
		r.dir = abs
	}
	return r
}

// URL returns the repository's URL with any password masked.
func (r *Repo) URL() string { return redactURL(r.url) }

// remoteFor makes a local path absolute (git runs in the cache directory,
// where a relative path would mean something else) and leaves URLs and
// scp-like addresses alone. Like git, it reads "host:path" as scp-like only
// when no slash comes before the first colon.
func remoteFor(u string) string {
	if strings.Contains(u, "://") {
		return u
	}
	if i := strings.IndexByte(u, ':'); i > 0 && !strings.Contains(u[:i], "/") {
		return u
	}
	if abs, err := filepath.Abs(u); err == nil {
		return abs
	}
	return u
}

func (r *Repo) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

func (r *Repo) fetchTimeout() time.Duration {
	if r.FetchTimeout > 0 {
		return r.FetchTimeout
	}
	return DefaultFetchTimeout
}

// git runs a read-only git command against the cache.
func (r *Repo) git(ctx context.Context, args ...string) ([]byte, error) {
	if _, err := os.Stat(filepath.Join(r.dir, "HEAD")); err != nil {
		return nil, fmt.Errorf("repository %s %w", r.URL(), errNotFetched)
	}
	return run(ctx, r.timeout(), "", r.redact, append([]string{"--git-dir=" + r.dir}, args...)...)
}

// Fetch brings the cache up to date with the remote: every branch and tag,
// with deleted ones pruned. The first Fetch builds the mirror in a
// temporary directory and moves it into place only once it succeeded, so a
// failed first fetch leaves nothing behind. Failures that talking to the
// remote can cause are retryable (IsRetryable).
func (r *Repo) Fetch(ctx context.Context) error {
	defer r.lockRefs()()
	start := time.Now()
	created := false
	if _, err := os.Stat(filepath.Join(r.dir, "HEAD")); errors.Is(err, fs.ErrNotExist) {
		if err := r.create(ctx); err != nil {
			return fmt.Errorf("fetch %s: %w", r.URL(), err)
		}
		created = true
	} else if err := r.fetch(ctx, r.dir); err != nil {
		return fmt.Errorf("fetch %s: %w", r.URL(), err)
	}
	r.logger.Debug("fetched", "duration", time.Since(start).Round(time.Millisecond), "created", created)
	return nil
}

// create makes the mirror: init a bare repository beside the cache
// directory, configure the remote, fetch, then rename it into place.
// (A `git clone --mirror` would also copy refs/pull/* and
// refs/merge-requests/* from hosting services; we want branches and tags.)
func (r *Repo) create(ctx context.Context) error {
	parent := filepath.Dir(r.dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(r.dir)+".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	git := func(args ...string) error {
		_, err := run(ctx, r.timeout(), "", r.redact, append([]string{"--git-dir=" + tmp}, args...)...)
		return err
	}
	if _, err := run(ctx, r.timeout(), "", r.redact, "init", "--bare", "--quiet", tmp); err != nil {
		return err
	}
	for _, kv := range [][]string{
		{"remote.origin.url", r.remote},
		{"remote.origin.fetch", "+refs/heads/*:refs/heads/*"},
		{"--add", "remote.origin.fetch", "+refs/tags/*:refs/tags/*"},
		{"gc.autoDetach", "false"}, // auto gc finishes inside the fetch command
		// Keep unreachable objects: a force-pushed-away commit may still
		// be built, rolled back to, or read by a checkout borrowing them.
		{"gc.pruneExpire", "never"},
		{"core.logAllRefUpdates", "false"},
	} {
		if err := git(append([]string{"config"}, kv...)...); err != nil {
			return err
		}
	}
	if err := r.fetch(ctx, tmp); err != nil {
		return err
	}
	// An empty directory in the way (made by an operator) is replaced; a
	// non-empty one makes the rename fail, and we say so.
	os.Remove(r.dir)
	if err := os.Rename(tmp, r.dir); err != nil {
		return fmt.Errorf("install cache: %w", err)
	}
	return nil
}

// fetch updates the bare repository at dir from the remote.
func (r *Repo) fetch(ctx context.Context, dir string) error {
	// The URL is set when it changed, so that a changed configuration
	// takes effect: reading it takes no lock, writing it takes config.lock,
	// which a ferry killed mid-write would leave behind.
	if url, err := run(ctx, r.timeout(), "", r.redact, "--git-dir="+dir, "config", "--get", "remote.origin.url"); err != nil || strings.TrimSpace(string(url)) != r.remote {
		if _, err := run(ctx, r.timeout(), "", r.redact, "--git-dir="+dir, "config", "remote.origin.url", r.remote); err != nil {
			return err
		}
	}
	_, err := run(ctx, r.fetchTimeout(), "", r.redact,
		"-c", "protocol.file.allow=always", // file:// remotes (and their submodules)
		"--git-dir="+dir, "fetch", "--quiet", "--prune", "--no-write-fetch-head", "origin")
	if e, ok := errors.AsType[*Error](err); ok && ctx.Err() == nil {
		// Whatever made the fetch fail (no route, DNS, TLS, refused,
		// missing repository, bad credentials) lives on the remote's
		// side or between us; it may be gone next time.
		e.retryable = true
	}
	return err
}

// checkRev refuses revisions git would take for an option.
func checkRev(rev string) error {
	if rev == "" || strings.HasPrefix(rev, "-") {
		return ferry.Errorf(ferry.EINVALID, "invalid revision %q", rev)
	}
	return nil
}

// resolve returns the full commit id that rev names in the cache, or
// ferry.ENOTFOUND.
func (r *Repo) resolve(ctx context.Context, rev string) (string, error) {
	if err := checkRev(rev); err != nil {
		return "", err
	}
	out, err := r.git(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if e, ok := errors.AsType[*Error](err); ok && exitCode(e) == 1 {
		return "", fmt.Errorf("%w (%w)", ferry.Errorf(ferry.ENOTFOUND, "revision %q not found in %s", rev, r.URL()), err)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func exitCode(e *Error) int {
	if x, ok := errors.AsType[*exec.ExitError](e.Err); ok {
		return x.ExitCode()
	}
	return -1
}

// Head returns the commit at the tip of branch, as of the last fetch, or
// ferry.ENOTFOUND if the branch does not exist.
func (r *Repo) Head(ctx context.Context, branch string) (string, error) {
	if err := checkRev(branch); err != nil {
		return "", err
	}
	heads, err := r.readHeads(ctx)
	if err != nil {
		return "", err
	}
	if sha, ok := heads[branch]; ok {
		return sha, nil
	}
	return "", ferry.Errorf(ferry.ENOTFOUND, "branch %q not found in %s", branch, r.URL())
}

// Heads returns every branch and the commit at its tip, as of the last fetch.
func (r *Repo) Heads(ctx context.Context) (map[string]string, error) {
	heads, err := r.readHeads(ctx)
	if err != nil {
		return nil, err
	}
	return maps.Clone(heads), nil
}

// readHeads returns the branch heads, read from the cache's refs once per
// generation: again only after a fetch, push or tag has written them. A
// read that overlapped a write is returned but not kept. The map is
// shared: callers must not change it.
func (r *Repo) readHeads(ctx context.Context) (map[string]string, error) {
	gen := r.refsGen.Load()
	r.headsMu.Lock()
	if r.heads != nil && r.headsGen == gen {
		defer r.headsMu.Unlock()
		return r.heads, nil
	}
	r.headsMu.Unlock()
	out, err := r.git(ctx, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/")
	if err != nil {
		return nil, err
	}
	heads := make(map[string]string)
	for line := range strings.Lines(string(out)) {
		sha, name, _ := strings.Cut(strings.TrimSpace(line), " ")
		if b, ok := strings.CutPrefix(name, "refs/heads/"); ok {
			heads[b] = sha
		}
	}
	if gen%2 == 0 && r.refsGen.Load() == gen {
		r.headsMu.Lock()
		r.heads, r.headsGen = heads, gen
		r.headsMu.Unlock()
	}
	return heads, nil
}

// commitFormat prints one commit per line; fields are NUL-separated (a
// subject never holds a newline: git joins the first paragraph).
const commitFormat = "--format=%H%x00%s%x00%an%x00%ae%x00%ct"

func parseCommits(out []byte) ([]ferry.Commit, error) {
	var cs []ferry.Commit
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSuffix(line, "\n")
		f := strings.Split(line, "\x00")
		if len(f) != 5 {
			return nil, fmt.Errorf("parse git log line %q", line)
		}
		sec, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse commit time %q: %w", f[4], err)
		}
		cs = append(cs, ferry.Commit{SHA: f[0], Subject: f[1], Author: f[2], AuthorEmail: f[3], Time: time.Unix(sec, 0).UTC()})
	}
	return cs, nil
}

// Commit describes the commit that rev (a commit id, branch or tag) names.
func (r *Repo) Commit(ctx context.Context, rev string) (ferry.Commit, error) {
	sha, err := r.resolve(ctx, rev)
	if err != nil {
		return ferry.Commit{}, err
	}
	out, err := r.git(ctx, "log", "-1", "--no-walk", commitFormat, sha, "--")
	if err != nil {
		return ferry.Commit{}, err
	}
	cs, err := parseCommits(out)
	if err != nil {
		return ferry.Commit{}, err
	}
	if len(cs) != 1 {
		return ferry.Commit{}, fmt.Errorf("git log %s: %d commits, want 1", sha, len(cs))
	}
	return cs[0], nil
}

// IsAncestor reports whether ancestor is reachable from descendant (a
// commit is its own ancestor). Unknown revisions are ferry.ENOTFOUND.
func (r *Repo) IsAncestor(ctx context.Context, ancestor, descendant string) (bool, error) {
	a, err := r.resolve(ctx, ancestor)
	if err != nil {
		return false, err
	}
	d, err := r.resolve(ctx, descendant)
	if err != nil {
		return false, err
	}
	_, err = r.git(ctx, "merge-base", "--is-ancestor", a, d)
	if e, ok := errors.AsType[*Error](err); ok && exitCode(e) == 1 {
		return false, nil
	}
	return err == nil, err
}

// Log returns the commits reachable from to and not from from, newest
// first; with from empty, every commit reachable from to.
func (r *Repo) Log(ctx context.Context, from, to string) ([]ferry.Commit, error) {
	return r.log(ctx, from, to, 0)
}

// Between returns the commits that moving a branch from from to to
// brought: reachable from to and not from from (git rev-list from..to),
// newest first, at most max of them (max > 0); more reports that there
// were more than max. A from that is not an ancestor of to (a reset, a
// force-push) gives the commits of to that from lacks.
func (r *Repo) Between(ctx context.Context, from, to string, max int) (commits []ferry.Commit, more bool, err error) {
	if from == "" || max <= 0 {
		return nil, false, ferry.Errorf(ferry.EINVALID, "between needs a starting commit and a positive limit")
	}
	cs, err := r.log(ctx, from, to, max+1)
	if err != nil {
		return nil, false, err
	}
	if len(cs) > max {
		return cs[:max], true, nil
	}
	return cs, false, nil
}

// log is Log with at most limit commits (limit > 0).
func (r *Repo) log(ctx context.Context, from, to string, limit int) ([]ferry.Commit, error) {
	t, err := r.resolve(ctx, to)
	if err != nil {
		return nil, err
	}
	args := []string{"log", commitFormat}
	if limit > 0 {
		args = append(args, "--max-count="+strconv.Itoa(limit))
	}
	args = append(args, t)
	if from != "" {
		f, err := r.resolve(ctx, from)
		if err != nil {
			return nil, err
		}
		args = append(args, "^"+f)
	}
	out, err := r.git(ctx, append(args, "--")...)
	if err != nil {
		return nil, err
	}
	return parseCommits(out)
}
