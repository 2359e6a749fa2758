package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/notify"
)

// Ledger is what the controller reads and writes.
type Ledger interface {
	Builds(ctx context.Context, f ledger.BuildFilter) ([]*ferry.Build, error)
	BuildByCommit(ctx context.Context, app, commit string) (*ferry.Build, error)
	CreateDeployment(ctx context.Context, d *ferry.Deployment) error
	UpdateDeployment(ctx context.Context, d *ferry.Deployment) error
	Deployment(ctx context.Context, id int64) (*ferry.Deployment, error)
	Deployments(ctx context.Context, f ledger.DeploymentFilter) ([]*ferry.Deployment, error)
	Current(ctx context.Context, app, env string) (*ferry.Deployment, error)
	TransitionDeployment(ctx context.Context, id int64, from, to ferry.DeploymentState, errMsg string, at time.Time) error
	AddEvent(ctx context.Context, e *ferry.Event) error
	Events(ctx context.Context, f ledger.EventFilter) ([]ferry.Event, error)
	// The actions asked of environments (ledger.ActionStore).
	CreateAction(ctx context.Context, a *ferry.Action) error
	Action(ctx context.Context, id int64) (*ferry.Action, error)
	Actions(ctx context.Context, f ledger.ActionFilter) ([]*ferry.Action, error)
	TransitionAction(ctx context.Context, id int64, from, to ferry.ActionState, result string, at time.Time) error
	CreateActionDeployment(ctx context.Context, actionID int64, d *ferry.Deployment) error
	// The release requests that wait for approvals (ledger.RequestStore).
	CreateReleaseRequest(ctx context.Context, r *ferry.ReleaseRequest) error
	ReleaseRequest(ctx context.Context, id int64) (*ferry.ReleaseRequest, error)
	ReleaseRequests(ctx context.Context, f ledger.RequestFilter) ([]*ferry.ReleaseRequest, error)
	AddApproval(ctx context.Context, id int64, a ferry.Approver, seen int, complete bool) error
	CloseReleaseRequest(ctx context.Context, id int64, to ferry.RequestState, result string, at time.Time) error
	SetRequestAction(ctx context.Context, id, actionID int64) error
}

// Locks is the part of the ledger that holds locks and quarantines.
type Locks interface {
	Lock(ctx context.Context, l *ferry.Lock) error
	Unlock(ctx context.Context, app, env string) (*ferry.Lock, error)
	LockOf(ctx context.Context, app, env string) (*ferry.Lock, error)
	AddQuarantine(ctx context.Context, q *ferry.Quarantine) error
	Quarantined(ctx context.Context, app, commit string) (*ferry.Quarantine, error)
}

// Registry moves and reads the registry tags that follow environments.
type Registry interface {
	Tag(ctx context.Context, digest, tag string) error
	Resolve(ctx context.Context, tag string) (string, error)
	// ListTags lists the repository's tags.
	ListTags(ctx context.Context) ([]string, error)
}

// Env is one environment as the controller drives it: the domain's
// environment with its runtime and the variables its replicas get.
type Env struct {
	ferry.Environment
	// Runtime runs the environment's replicas; the controller is its only
	// caller for changes (see ferry.Runtime).
	Runtime ferry.Runtime
	// Vars are given to the app, secrets resolved.
	Vars []ferry.Var
	// Figures, when set, is where a canary's figures come from (Prometheus
	// on Kubernetes); when nil, the runtime's own (the local balancer's),
	// if it has them (canary.go).
	Figures FigureSource
}

// Config is everything the controller needs; every field but Logger,
// After, Canaries and the drift check's is required, and New names a missing one.
type Config struct {
	App string
	// Image is the repository images are pulled from.
	Image string
	Envs  []Env
	// Ledger records deployments and events; Locks holds locks and
	// quarantines (both usually the ledger).
	Ledger Ledger
	Locks  Locks
	// Registry moves the tags that follow environments and releases.
	Registry Registry
	// Git is the app's repository, for releases (promote, rollback, tags)
	// and the env/* refs.
	Git Git
	// Canaries records each canary's state (usually the ledger); without
	// it, releases go straight to every replica, as without a canary.
	Canaries CanaryRuns
	// Verifier checks every digest's signature and provenance before its
	// rollout (see Controller.apply).
	Verifier Verifier
	// Now is the clock.
	Now func() time.Time
	// After is the timer a promote --when-open waits for an opening with;
	// time.After when nil.
	After func(d time.Duration) <-chan time.Time
	// DriftEvery is how often the drift check runs by itself, recording
	// drift.found and drift.resolved (driftwatch.go); DefaultDriftEvery
	// when 0. DriftTicks, when set, are its ticks instead (for tests).
	DriftEvery time.Duration
	DriftTicks <-chan time.Time
	Logger     *slog.Logger
}

// Controller drives every environment.
type Controller struct {
	cfg    Config
	ledger Ledger
	tags   Registry
	git    Git
	locks  Locks
	now    func() time.Time
	log    *slog.Logger

	envs    []*envRunner
	byName  map[string]*envRunner
	changed *notify.Broadcast
	wg      sync.WaitGroup
	// restored is done once every environment's restore has ended.
	restored sync.WaitGroup
	// runCtx is Start's context: it ends the controller's run.
	runCtx context.Context

	// verified holds the digests status --check has verified (unsigned).
	verifiedMu sync.Mutex
	verified   map[string]bool
}

// envRunner serialises one environment's rollouts.
type envRunner struct {
	env Env
	// mainline is the branch whose history alone a gated environment
	// releases: the branch at the root of its upstream chain.
	mainline string
	wake     chan struct{}

	// turn queues the environment's actions (queue.go): one at a time,
	// each decided when it runs.
	turn *turn
	// submitMu makes recording an action and taking its ticket one step.
	submitMu sync.Mutex

	// reqMu serialises requests, so that checking for an equal pending or
	// active deployment and recording a new one are one step.
	reqMu sync.Mutex

	mu      sync.Mutex
	pending *ferry.Deployment // recorded, not started; a newer request supersedes it
	active  *ferry.Deployment // being rolled out
	// finishing is set once active succeeded and only its tags are left to
	// move: a new request may queue behind it without being refused.
	finishing bool
	progress  ferry.Progress
	alert     string // a release head that was pushed but not deployed, and why
	// canary is the canary the loop runs now (canary.go), nil when none.
	canary *liveCanary
	// done holds, per deployment handed to the loop, a channel closed once
	// it has finished or was superseded.
	done map[int64]chan struct{}
}

// New returns a controller; Start starts it. It refuses a Config that
// misses a dependency, naming it.
func New(cfg Config) (*Controller, error) {
	var missing []string
	for _, dep := range []struct {
		name  string
		unset bool
	}{
		{"App", cfg.App == ""}, {"Image", cfg.Image == ""}, {"Envs", len(cfg.Envs) == 0},
		{"Ledger", cfg.Ledger == nil}, {"Locks", cfg.Locks == nil}, {"Registry", cfg.Registry == nil},
		{"Git", cfg.Git == nil}, {"Verifier", cfg.Verifier == nil}, {"Now", cfg.Now == nil},
	} {
		if dep.unset {
			missing = append(missing, dep.name)
		}
	}
	for _, e := range cfg.Envs {
		if e.Runtime == nil {
			missing = append(missing, "Envs["+e.Name+"].Runtime")
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("controller: missing %s", strings.Join(missing, ", "))
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	c := &Controller{cfg: cfg, ledger: cfg.Ledger, tags: cfg.Registry, git: cfg.Git, locks: cfg.Locks, now: cfg.Now, log: logger, byName: map[string]*envRunner{}, changed: notify.New(), verified: map[string]bool{}}
	domain := make([]ferry.Environment, len(cfg.Envs))
	for i, e := range cfg.Envs {
		domain[i] = e.Environment
	}
	for _, e := range cfg.Envs {
		r := &envRunner{env: e, mainline: ferry.Mainline(domain, e.Name), wake: make(chan struct{}, 1), turn: newTurn(), done: map[int64]chan struct{}{}}
		c.envs = append(c.envs, r)
		c.byName[e.Name] = r
	}
	return c, nil
}

// Changed returns a channel closed at the next change of any deployment.
func (c *Controller) Changed() <-chan struct{} { return c.changed.Wait() }

// Start closes deployments an interrupted run left unfinished, then starts
// one loop per environment, which first restores what the environment ran
// (from the ledger), converges on its branch (converge.go: the head's
// build, also one whose rollout a stop of ferry interrupted), and then runs requested deployments one at a time until ctx ends.
// It also starts the periodic drift check (driftwatch.go).
// Start returns once recovery is done; Wait waits for the loops.
func (c *Controller) Start(ctx context.Context) error {
	c.runCtx = ctx
	if err := c.recoverCanaries(ctx); err != nil {
		return err
	}
	if err := c.recoverInterrupted(ctx); err != nil {
		return err
	}
	if err := c.recoverActions(ctx); err != nil {
		return err
	}
	if err := c.reconcile(ctx); err != nil {
		return err
	}
	if err := c.resumeApproved(ctx); err != nil {
		return err
	}
	c.restored.Add(len(c.envs))
	for _, r := range c.envs {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := c.restore(ctx, r); err != nil && ctx.Err() == nil {
				c.log.Error("restore environment", "env", r.env.Name, "err", err)
			}
			c.restored.Done()
			c.converge(ctx, r)
			c.loop(ctx, r)
		}()
		if r.env.Auto && r.env.Gated() {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.autoLoop(ctx, r)
			}()
		}
	}
	ticks := c.cfg.DriftTicks
	if ticks == nil {
		t := time.NewTicker(cmp.Or(c.cfg.DriftEvery, DefaultDriftEvery))
		context.AfterFunc(ctx, t.Stop)
		ticks = t.C
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.driftLoop(ctx, ticks)
	}()
	return nil
}

// Wait blocks until every environment's loop, and every action started
// in the background, has stopped.
func (c *Controller) Wait() { c.wg.Wait() }

// recoverInterrupted closes deployments a previous run left unfinished:
// what really runs is restored from the last succeeded deployment next.
func (c *Controller) recoverInterrupted(ctx context.Context) error {
	open, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, States: []ferry.DeploymentState{
		ferry.DeploymentPending, ferry.DeploymentRolling, ferry.DeploymentVerifying,
	}, Limit: 1000})
	if err != nil {
		return fmt.Errorf("list unfinished deployments: %w", err)
	}
	for _, d := range open {
		msg := interrupted
		if err := c.ledger.TransitionDeployment(ctx, d.ID, d.State, ferry.DeploymentFailed, msg, c.now()); err != nil {
			return fmt.Errorf("close deployment %d: %w", d.ID, err)
		}
		c.event(ctx, "deployment.abandoned", "ferry", d, msg)
	}
	return nil
}

// restore applies the environment's current deployment to its runtime
// (adopting or restarting replicas); converge then catches up with the
// branch.
func (c *Controller) restore(ctx context.Context, r *envRunner) error {
	cur, err := c.ledger.Current(ctx, c.cfg.App, r.env.Name)
	switch {
	case err == nil:
		spec := c.spec(r, cur)
		c.log.Info("restoring environment", "env", r.env.Name, "digest", cur.Digest, "replicas", cur.Replicas)
		if err := c.apply(ctx, r, cur, spec, func(ferry.Progress) {}); err != nil {
			c.event(ctx, "environment.restore-failed", "ferry", cur, err.Error())
			return fmt.Errorf("restore %s to %s: %w", r.env.Name, cur.Digest, err)
		}
	case ferry.ErrorCode(err) != ferry.ENOTFOUND:
		return err
	}
	return nil
}

// BuildSucceeded queues the build's digest for every environment its
// branch drives. It returns the deployments it queued.
func (c *Controller) BuildSucceeded(ctx context.Context, b *ferry.Build) ([]*ferry.Deployment, error) {
	var out []*ferry.Deployment
	for _, r := range c.envs {
		if r.env.From != "" || r.env.Branch != b.Branch || c.behindHead(ctx, r, b) {
			continue
		}
		d := &ferry.Deployment{
			App: c.cfg.App, Env: r.env.Name, Kind: ferry.DeployDeploy, BuildID: b.ID,
			Commit: b.Commit, Digest: b.Digest, Actor: "ferry",
			Reason: fmt.Sprintf("build %d of %s succeeded", b.ID, b.Branch),
		}
		d, err := c.request(ctx, r, d, 0)
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// request records d as pending and hands it to the environment's loop;
// a pending deployment not yet started is superseded. A deploy of the
// digest that is already pending or rolling out is not recorded twice: the
// existing deployment is returned. actionID is the action that asks for
// d, 0 for none (intend).
func (c *Controller) request(ctx context.Context, r *envRunner, d *ferry.Deployment, actionID int64) (*ferry.Deployment, error) {
	r.reqMu.Lock()
	defer r.reqMu.Unlock()
	if d.Kind == ferry.DeployDeploy {
		r.mu.Lock()
		dup := r.pending
		if dup == nil || dup.Digest != d.Digest {
			dup = r.active
		}
		r.mu.Unlock()
		if dup != nil && dup.Digest == d.Digest && dup.Kind == d.Kind {
			return dup, nil
		}
	}
	if err := c.intend(ctx, r, d, actionID); err != nil {
		return nil, err
	}
	c.hand(ctx, r, d)
	return d, nil
}

// intend records d as pending, with its actor and reason, before anything
// moves for it: a crash from here on leaves it in the ledger under its
// own name, for the next start to close. The deployment of an action
// (actionID, 0 for none) is recorded with its link to the action in one
// write.
func (c *Controller) intend(ctx context.Context, r *envRunner, d *ferry.Deployment, actionID int64) error {
	d.State, d.CreatedAt = ferry.DeploymentPending, c.now()
	if d.Replicas == 0 {
		d.Replicas = c.replicas(ctx, r)
	}
	create := c.ledger.CreateDeployment
	if actionID != 0 {
		create = func(ctx context.Context, d *ferry.Deployment) error {
			return c.ledger.CreateActionDeployment(ctx, actionID, d)
		}
	}
	if err := create(ctx, d); err != nil {
		return fmt.Errorf("record deployment to %s: %w", r.env.Name, err)
	}
	c.event(ctx, "deployment.queued", d.Actor, d, d.Reason)
	return nil
}

// hand gives the recorded deployment d to r's loop, superseding a pending
// one not yet started.
func (c *Controller) hand(ctx context.Context, r *envRunner, d *ferry.Deployment) {
	r.mu.Lock()
	old := r.pending
	r.pending = d
	r.done[d.ID] = make(chan struct{})
	r.mu.Unlock()
	if old != nil {
		r.finished(old.ID)
		msg := fmt.Sprintf("superseded by deployment %d of %s", d.ID, ferry.ShortSHA(d.Commit))
		if err := c.ledger.TransitionDeployment(ctx, old.ID, ferry.DeploymentPending, ferry.DeploymentSuperseded, msg, c.now()); err == nil {
			c.event(ctx, "deployment.superseded", "ferry", old, msg)
		}
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	c.changed.Notify()
}

// replicas is the environment's current replica count.
func (c *Controller) replicas(ctx context.Context, r *envRunner) int {
	if cur, err := c.ledger.Current(ctx, c.cfg.App, r.env.Name); err == nil && cur.Replicas > 0 {
		return cur.Replicas
	}
	return r.env.Replicas
}

// Scale changes an environment's replica count, recorded as a deployment.
// It is an action (actions.go): recorded, then run in its turn among the
// environment's actions (queue.go); Scale returns once it was decided.
func (c *Controller) Scale(ctx context.Context, env string, replicas int, actor, reason string) (*ferry.Deployment, error) {
	o := c.ask(ctx, ferry.Action{Env: env, Kind: ferry.ActionScale, Replicas: replicas, Actor: actor, Reason: reason})
	return o.d, o.err
}

// scale is a scale action (actionID) in r's turn.
func (c *Controller) scale(ctx context.Context, r *envRunner, replicas int, actor, reason string, actionID int64) (*ferry.Deployment, error) {
	env := r.env.Name
	cur, err := c.ledger.Current(ctx, c.cfg.App, env)
	if err != nil {
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return nil, ferry.Errorf(ferry.ECONFLICT, "%s runs nothing yet; deploy a build before scaling", env)
		}
		return nil, err
	}
	d := &ferry.Deployment{
		App: c.cfg.App, Env: env, Kind: ferry.DeployScale, BuildID: cur.BuildID,
		Commit: cur.Commit, Digest: cur.Digest, Release: cur.Release, Replicas: replicas,
		Actor: actor, Reason: reason,
	}
	if d.Reason == "" {
		d.Reason = fmt.Sprintf("scale from %d to %d", cur.Replicas, replicas)
	}
	return c.request(ctx, r, d, actionID)
}

func (c *Controller) env(name string) (*envRunner, error) {
	r, ok := c.byName[name]
	if !ok {
		return nil, ferry.UnknownEnvironment(name, c.names())
	}
	return r, nil
}

func (c *Controller) names() []string {
	out := make([]string, len(c.envs))
	for i, r := range c.envs {
		out[i] = r.env.Name
	}
	return out
}

// Close stops every runtime (replicas and load balancers).
func (c *Controller) Close(ctx context.Context) error {
	var errs []error
	for _, r := range c.envs {
		if err := r.env.Runtime.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", r.env.Name, err))
		}
	}
	return errors.Join(errs...)
}

// event records what happened to deployment d (kind deployment.queued,
// tag.failed, …), with a message naming it.
func (c *Controller) event(ctx context.Context, kind, actor string, d *ferry.Deployment, reason string) {
	what := kind[strings.IndexByte(kind, '.')+1:]
	msg := fmt.Sprintf("%s %d to %s: %s %s", d.Kind, d.ID, d.Env, ferry.ShortSHA(d.Commit), what)
	if d.Kind == ferry.DeployScale {
		msg = fmt.Sprintf("scale %d of %s to %d replicas: %s", d.ID, d.Env, d.Replicas, what)
	}
	c.record(ctx, ferry.Event{Actor: actor, Kind: kind, Env: d.Env, Commit: d.Commit, BuildID: d.BuildID, Message: msg, Reason: reason})
}

// record is the one way the controller writes an audit event: it stamps
// e with the clock and the app, appends it to the ledger (a failure is
// logged, never returned: the change it records has happened) and wakes
// followers.
func (c *Controller) record(ctx context.Context, e ferry.Event) {
	e.Time, e.App = c.now(), c.cfg.App
	if err := c.ledger.AddEvent(ctx, &e); err != nil {
		c.log.Error("record event", "kind", e.Kind, "err", err)
	}
	c.changed.Notify()
}
