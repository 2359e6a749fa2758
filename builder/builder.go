// Package builder turns commits into images: it queues builds per branch
// (the newest head supersedes queued ones), runs each through the pipeline
// engine with the concrete steps — checkout, test, build image, push, sign,
// integration, tag — and records every state change and log line in the
// ledger.
//
// A commit is built at most once: the ledger is asked first, then the
// registry (an image tagged sha-<commit> is adopted, not rebuilt, when its
// signature and provenance verify; otherwise it is built again).
package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"text/template"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/notify"
)

// Ledger is what the builder needs of the ledger.
type Ledger interface {
	CreateBuild(ctx context.Context, b *ferry.Build) error
	Build(ctx context.Context, id int64) (*ferry.Build, error)
	BuildByCommit(ctx context.Context, app, commit string) (*ferry.Build, error)
	Builds(ctx context.Context, f ledger.BuildFilter) ([]*ferry.Build, error)
	UpdateBuild(ctx context.Context, b *ferry.Build) error
	TransitionBuild(ctx context.Context, id int64, from, to ferry.BuildState, reason string, at time.Time) error
	SaveStep(ctx context.Context, s ferry.Step) error
	AppendLog(ctx context.Context, buildID int64, lines []ferry.LogLine) error
	AddEvent(ctx context.Context, e *ferry.Event) error
}

// Source is what the builder needs of the git repository.
type Source interface {
	Commit(ctx context.Context, rev string) (ferry.Commit, error)
	// Between lists the commits moving a branch from from to to brought,
	// newest first, at most max (more: there were more).
	Between(ctx context.Context, from, to string, max int) (commits []ferry.Commit, more bool, err error)
	Checkout(ctx context.Context, sha, dir string) error
	RemoveCheckout(ctx context.Context, dir string) error
}

// Publisher is what the builder needs of the registry.
type Publisher interface {
	Push(ctx context.Context, img v1.Image, tags ...string) (digest string, err error)
	Tag(ctx context.Context, digest, tag string) error
	Resolve(ctx context.Context, tag string) (digest string, err error)
	Ref(digestOrTag string) string
}

// Signer signs a pushed digest with ferry's key and stores its signature
// and its provenance attestation next to the image (package cosign).
type Signer interface {
	Sign(ctx context.Context, digest string, p ferry.Provenance) error
}

// Verifier checks a digest's signature and attestation against ferry's key
// and the ledger's build record (b.Digest is empty while b runs).
type Verifier interface {
	Verify(ctx context.Context, digest string, b *ferry.Build) error
}

// Config is how builds are made.
type Config struct {
	App string
	// Image is the repository images are pushed to (host/path).
	Image string
	// Source is the repository URL recorded in the image's labels.
	Source string
	// WorkDir holds the per-build worktrees.
	WorkDir string
	// Dir is where, inside the repository, the test and the build run
	// (slash-separated, relative; "" or "." for the root).
	Dir string
	// Test is a shell command run in the worktree; empty skips the step.
	Test string
	// Timeout bounds each step.
	Timeout time.Duration
	// Go builds a static Go binary into an image; Command runs the user's
	// own build instead. Exactly one is set.
	Go      *GoConfig
	Command string
	// PushAttempts bounds retries of a push to a registry that is down.
	PushAttempts int
	// Integration, when set, runs each pushed image on trial (Trial) and
	// checks it before the commit's tags are set: only an image that
	// passes becomes deployable.
	Integration *Integration
	Trial       Trial

	// BuilderID names this ferry in provenance attestations (SLSA
	// builder.id).
	BuilderID string

	// The builder's dependencies, all required but Logger.
	Ledger   Ledger
	Git      Source    // the app's repository
	Registry Publisher // where images go
	Signer   Signer    // signs what passed the tests and was pushed
	Verifier Verifier  // checks an image found under sha-<commit> before adopting it
	Now      func() time.Time
	Logger   *slog.Logger
}

// Integration is what the integration step asks of a trial run.
type Integration struct {
	// Checks run against the trial's URL (package verify).
	Checks []ferry.Check
	// Command, when set, runs in the worktree after the checks, with
	// FERRY_URL the trial's base URL.
	Command string
	// Timeout bounds the step: start, checks and command.
	Timeout time.Duration
}

// Trial runs a built image the way an environment would, in a throwaway
// environment of its own, for the integration step.
type Trial interface {
	// Start runs digest (of commit) as one replica named for build, and
	// returns its base URL once the replica is ready. Its progress goes
	// to log. stop, set when err is nil, stops the replica and removes
	// all it wrote; with failed it first writes the replica's recent
	// output to log. A Start that fails has already cleaned up, its error
	// saying why (and the output the replica gave).
	Start(ctx context.Context, build int64, commit, digest string, log io.Writer) (url string, stop func(failed bool), err error)
}

// GoConfig configures the Go image builder.
type GoConfig struct {
	Main string
	// Ldflags is a text/template over ferry.TemplateData (Time is the
	// commit's time, so the output is the same for each build).
	Ldflags string
	Env     []string
}

// Builder queues and runs builds. Create it with New, call Run once.
type Builder struct {
	cfg     Config
	ledger  Ledger
	src     Source
	pub     Publisher
	now     func() time.Time
	log     *slog.Logger
	ldflags *template.Template

	// OnSucceeded, when set, hears every build that produced an image.
	OnSucceeded func(*ferry.Build)

	enqueueMu sync.Mutex // serialises Enqueue so supersession is exact
	wake      chan struct{}
	changed   *notify.Broadcast

	mu       sync.Mutex
	cancelID int64
	cancel   context.CancelFunc
}

// New returns a Builder. It refuses a Config that misses a dependency.
func New(cfg Config) (*Builder, error) {
	if (cfg.Go == nil) == (cfg.Command == "") {
		return nil, errors.New("builder: exactly one of Go and Command must be set")
	}
	if cfg.Ledger == nil || cfg.Git == nil || cfg.Registry == nil || cfg.Signer == nil || cfg.Verifier == nil || cfg.Now == nil {
		return nil, errors.New("builder: Ledger, Git, Registry, Signer, Verifier and Now are required")
	}
	if cfg.Integration != nil && cfg.Trial == nil {
		return nil, errors.New("builder: Integration needs a Trial to run images on")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Builder{
		cfg: cfg, ledger: cfg.Ledger, src: cfg.Git, pub: cfg.Registry, now: cfg.Now, log: logger,
		wake: make(chan struct{}, 1), changed: notify.New(),
	}
	if cfg.Timeout <= 0 {
		b.cfg.Timeout = 10 * time.Minute
	}
	if cfg.PushAttempts <= 0 {
		b.cfg.PushAttempts = 6
	}
	if cfg.Go != nil {
		t, err := template.New("ldflags").Option("missingkey=error").Parse(cfg.Go.Ldflags)
		if err != nil {
			return nil, fmt.Errorf("builder: ldflags: %w", err)
		}
		b.ldflags = t
	}
	return b, nil
}

// Changed returns a channel closed at the next change of any build's state
// or logs; API followers wait on it.
func (b *Builder) Changed() <-chan struct{} { return b.changed.Wait() }

// Enqueue records that branch's head is commit and queues a build of it,
// unless the commit already has one (then that build is returned and
// nothing is queued). Queued builds of the same branch are superseded.
func (b *Builder) Enqueue(ctx context.Context, branch, commit, trigger, actor string) (*ferry.Build, bool, error) {
	if !ferry.ValidCommit(commit) {
		return nil, false, ferry.Errorf(ferry.EINVALID, "commit %q is not a full 40-hex commit id", commit)
	}
	b.enqueueMu.Lock()
	defer b.enqueueMu.Unlock()

	existing, err := b.ledger.BuildByCommit(ctx, b.cfg.App, commit)
	switch {
	case err == nil:
		return existing, false, nil
	case ferry.ErrorCode(err) != ferry.ENOTFOUND:
		return nil, false, fmt.Errorf("look up build of %s: %w", ferry.ShortSHA(commit), err)
	}
	info, err := b.src.Commit(ctx, commit)
	if err != nil {
		return nil, false, fmt.Errorf("read commit %s: %w", ferry.ShortSHA(commit), err)
	}
	now := b.now()
	prev, err := b.ledger.Builds(ctx, ledger.BuildFilter{App: b.cfg.App, Branch: branch, Limit: 1})
	if err != nil {
		return nil, false, fmt.Errorf("read the last build of %s: %w", branch, err)
	}
	queued, err := b.ledger.Builds(ctx, ledger.BuildFilter{App: b.cfg.App, Branch: branch, States: []ferry.BuildState{ferry.BuildQueued}})
	if err != nil {
		return nil, false, fmt.Errorf("list queued builds: %w", err)
	}
	for _, q := range queued {
		if err := b.supersede(ctx, q, commit, actor, now); err != nil {
			if ferry.ErrorCode(err) == ferry.ECONFLICT {
				continue // it started meanwhile
			}
			return nil, false, fmt.Errorf("supersede build %d: %w", q.ID, err)
		}
	}
	build := &ferry.Build{
		App: b.cfg.App, Commit: commit, Branch: branch,
		Subject: info.Subject, Author: info.Author,
		Trigger: trigger, State: ferry.BuildQueued, Image: b.cfg.Image, CreatedAt: now,
	}
	var arrived arrivals
	if len(prev) > 0 { // recorded before the head, so IDs follow the history
		arrived = b.recordArrivals(ctx, prev[0].Commit, build)
	}
	if err := b.ledger.CreateBuild(ctx, build); err != nil {
		if ferry.ErrorCode(err) == ferry.ECONFLICT { // another server queued it first
			existing, gerr := b.ledger.BuildByCommit(ctx, b.cfg.App, commit)
			if gerr == nil {
				return existing, false, nil
			}
		}
		return nil, false, fmt.Errorf("queue build of %s: %w", ferry.ShortSHA(commit), err)
	}
	b.event(ctx, "build.queued", actor, build, "")
	b.arrivalsEvent(ctx, build, actor, arrived)
	b.kick()
	return build, true, nil
}

// Cancel stops a queued or running build.
func (b *Builder) Cancel(ctx context.Context, id int64, actor, reason string) error {
	build, err := b.ledger.Build(ctx, id)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "canceled by " + actor
	}
	switch build.State {
	case ferry.BuildQueued:
		if err := b.ledger.TransitionBuild(ctx, id, ferry.BuildQueued, ferry.BuildCanceled, reason, b.now()); err != nil {
			return err
		}
		b.event(ctx, "build.canceled", actor, build, reason)
		return nil
	case ferry.BuildRunning:
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.cancelID != id || b.cancel == nil {
			return ferry.Errorf(ferry.ECONFLICT, "build %d runs on another ferry server", id)
		}
		b.cancel()
		return nil
	}
	return ferry.Errorf(ferry.ECONFLICT, "build %d is already %s", id, build.State)
}

func (b *Builder) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
	b.changed.Notify()
}

// Run resumes builds a previous run left behind, then builds queued
// commits one at a time until ctx ends.
func (b *Builder) Run(ctx context.Context) error {
	if err := b.recoverInterrupted(ctx); err != nil {
		return err
	}
	for {
		next, err := b.nextQueued(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			b.log.Error("pick next build", "err", err)
		}
		if next != nil {
			b.runBuild(ctx, next)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		case <-time.After(5 * time.Second): // another server may have queued work
		}
	}
}

// recoverInterrupted puts builds that were running when ferry stopped back
// in the queue: every step is safe to run again (the same commit gives the
// same digest and pushing it twice uploads nothing).
func (b *Builder) recoverInterrupted(ctx context.Context) error {
	running, err := b.ledger.Builds(ctx, ledger.BuildFilter{App: b.cfg.App, States: []ferry.BuildState{ferry.BuildRunning}})
	if err != nil {
		return fmt.Errorf("list interrupted builds: %w", err)
	}
	for _, r := range running {
		reason := "ferry stopped during the build; resuming from the start"
		if err := b.ledger.TransitionBuild(ctx, r.ID, ferry.BuildRunning, ferry.BuildQueued, reason, b.now()); err != nil {
			return fmt.Errorf("requeue build %d: %w", r.ID, err)
		}
		b.event(ctx, "build.resumed", "ferry", r, reason)
	}
	return nil
}

// supersededBy is the reason of a build that was not run because commit,
// a newer head of branch, arrived before it started.
func supersededBy(commit, branch string) string {
	return fmt.Sprintf("superseded by %s, a newer head of %s", ferry.ShortSHA(commit), branch)
}

// supersede moves the queued build q to superseded, for commit, a newer
// head of its branch, and records the event.
func (b *Builder) supersede(ctx context.Context, q *ferry.Build, commit, actor string, now time.Time) error {
	reason := supersededBy(commit, q.Branch)
	if err := b.ledger.TransitionBuild(ctx, q.ID, ferry.BuildQueued, ferry.BuildSuperseded, reason, now); err != nil {
		return err
	}
	b.event(ctx, "build.superseded", actor, q, reason)
	return nil
}

// nextQueued returns the oldest queued build, or nil.
func (b *Builder) nextQueued(ctx context.Context) (*ferry.Build, error) {
	queued, err := b.ledger.Builds(ctx, ledger.BuildFilter{App: b.cfg.App, States: []ferry.BuildState{ferry.BuildQueued}, Limit: 1000})
	if err != nil || len(queued) == 0 {
		return nil, err
	}
	// A restart may leave several queued heads of one branch: keep the newest.
	newest := map[string]*ferry.Build{}
	for _, q := range queued { // newest first
		if n, ok := newest[q.Branch]; ok {
			_ = b.supersede(ctx, q, n.Commit, "ferry", b.now())
			continue
		}
		newest[q.Branch] = q
	}
	heads := make([]*ferry.Build, 0, len(newest))
	for _, q := range newest {
		heads = append(heads, q)
	}
	slices.SortFunc(heads, func(x, y *ferry.Build) int { return int(x.ID - y.ID) })
	return heads[0], nil
}

func (b *Builder) event(ctx context.Context, kind, actor string, build *ferry.Build, reason string) {
	msg := fmt.Sprintf("build %d of %s (%s): %s", build.ID, build.ShortCommit(), build.Branch, kind[len("build."):])
	e := &ferry.Event{
		Time: b.now(), Actor: actor, Kind: kind, App: build.App,
		Commit: build.Commit, BuildID: build.ID, Message: msg, Reason: reason,
	}
	if err := b.ledger.AddEvent(ctx, e); err != nil {
		b.log.Error("record event", "kind", kind, "build", build.ID, "err", err)
	}
	b.changed.Notify()
}
