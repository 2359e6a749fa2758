package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
)

// splitter is a runtime that can run a canary beside the stable version
// (the canary contract of issue 15; runtime/local and runtime/kube
// implement it).
type splitter interface {
	// Split starts the canary (and, with s.Baseline, a fresh baseline of
	// s.Stable) when it does not run yet, waits until it is ready, then
	// routes s.Weight percent of requests to each; idempotent.
	Split(ctx context.Context, s ferry.Split, progress func(ferry.Progress)) error
	// EndSplit drains and stops canary and baseline and routes everything
	// to the stable replicas; idempotent, a no-op without a split.
	EndSplit(ctx context.Context) error
}

// FigureSource is where each track's figures of a split come from (the
// contract's figures): the local runtime's balancer, or Prometheus on
// Kubernetes. Figures are cumulative since the track started serving in
// the current split, keyed by ferry.Track*; empty with no split.
type FigureSource interface {
	Figures(ctx context.Context) (map[string]analysis.Figures, error)
}

// CanaryRuns is the part of the ledger that keeps each canary's state
// (ledger.CanaryStore).
type CanaryRuns interface {
	SaveCanary(ctx context.Context, r *ferry.CanaryRun) error
	Canaries(ctx context.Context, app, env string, states []ferry.CanaryState, limit int) ([]*ferry.CanaryRun, error)
}

// canaryOf returns how r runs a canary: its splitter and figure source,
// or ok false when r releases straight to every replica (no canary
// configured, or a runtime without a split, or no figures).
func (c *Controller) canaryOf(r *envRunner) (sp splitter, fig FigureSource, ok bool) {
	if r.env.Canary == nil || len(r.env.Canary.Steps) == 0 || c.cfg.Canaries == nil {
		return nil, nil, false
	}
	sp, ok = r.env.Runtime.(splitter)
	if !ok {
		return nil, nil, false
	}
	fig = r.env.Figures
	if fig == nil {
		fig, _ = r.env.Runtime.(FigureSource)
	}
	return sp, fig, fig != nil
}

// canaryCmd is a person's command to a running canary (rollout pause,
// resume, abort, promote); done gets its answer.
type canaryCmd struct {
	kind          string // "pause", "resume", "abort", "promote"
	actor, reason string
	done          chan error
}

// liveCanary is the canary r runs now, as the loop keeps it: its record,
// this step's figures per track, and the command channel.
type liveCanary struct {
	run ferry.CanaryRun
	// commit is the release's commit: a push of anything else to the
	// branch preempts the canary.
	commit  string
	verdict *analysis.Verdict
	// span is this step's figures per track since the step began, over
	// spanFor.
	span    map[string]analysis.Figures
	spanFor time.Duration
	// since is each track's figures when the first step began: a
	// judgement weighs everything the canary served, not only this
	// step's, so that a step does not start again from no evidence (at
	// 20 req/s a 5 % step has one canary request a second, and the
	// errors seen while it gathered minRequests were lost when it ended).
	since map[string]analysis.Figures
	cmds  chan canaryCmd
	// ended is closed once runCanary has returned: a command that waits
	// for the loop (busy promoting or ending the canary) gives up then.
	ended chan struct{}
	// saved is what the ledger holds of the run, as savedAs compares it.
	saved savedAs
}

// savedAs is what a canary's record says that a person or ferry acts on:
// a judgement every interval that changes none of it is not written.
type savedAs struct {
	state       ferry.CanaryState
	reason      string
	step        int
	weight      int
	stepStarted time.Time
	outcome     analysis.Outcome
	reasons     string
}

func savedOf(run ferry.CanaryRun, v *analysis.Verdict) savedAs {
	s := savedAs{state: run.State, reason: run.Reason, step: run.Step, weight: run.Weight, stepStarted: run.StepStarted}
	if v != nil {
		s.outcome, s.reasons = v.Outcome, strings.Join(v.Reasons, "\n")
	}
	return s
}

// CanaryStatus is an environment's canary as status shows it.
type CanaryStatus struct {
	// Run is the running canary, or the last one that ended; nil when the
	// environment never had one.
	Run *ferry.CanaryRun
	// Active is set while the canary runs (or is paused).
	Active bool
	// Tracks are this step's figures per track (ferry.Track*), over Span.
	Tracks map[string]analysis.Figures
	Span   time.Duration
	// Verdict is the last judgement, nil before the first.
	Verdict *analysis.Verdict
	// StepFor is how long the current step lasts at least.
	StepFor time.Duration
}

// canaryAbort is a canary that ended without its release: the deployment
// fails with this, and nothing of the stable version was touched.
type canaryAbort struct{ msg string }

func (a *canaryAbort) Error() string { return a.msg }

// canaryErr is the error a deployment fails with: an abort as it is, a
// runtime's error wrapped.
func canaryErr(err error) error {
	if _, ok := errors.AsType[*canaryAbort](err); ok {
		return err
	}
	return fmt.Errorf("canary: %w", err)
}

// runCanary takes the release d through r's canary steps beside prev, what
// runs now. It returns nil once the canary took every replica (Apply of
// d's spec, then EndSplit), a *canaryAbort when a judgement failed or a
// person aborted it (the split ended, stable untouched), a *refusal when
// d's digest does not verify (nothing started), or another error when the
// runtime failed (the split ended). The canary's state is in the ledger
// throughout.
func (c *Controller) runCanary(ctx context.Context, r *envRunner, d, prev *ferry.Deployment, sp splitter, fig FigureSource, progress func(ferry.Progress)) error {
	cfg := r.env.Canary
	if err := c.check(ctx, d, d.Digest); err != nil {
		return err
	}
	live := &liveCanary{
		run:    ferry.CanaryRun{DeploymentID: d.ID, App: c.cfg.App, Env: r.env.Name, Steps: len(cfg.Steps), State: ferry.CanaryRunning},
		commit: d.Commit,
		cmds:   make(chan canaryCmd),
		ended:  make(chan struct{}),
	}
	r.mu.Lock()
	r.canary = live
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.canary = nil
		r.mu.Unlock()
		close(live.ended)
		c.changed.Notify()
	}()
	split := ferry.Split{Stable: c.spec(r, prev), Canary: c.spec(r, d), Baseline: cfg.Baseline}
	end := func(state ferry.CanaryState, reason string) {
		if err := sp.EndSplit(context.WithoutCancel(ctx)); err != nil {
			c.log.Error("end canary split", "env", r.env.Name, "err", err)
			reason += fmt.Sprintf(" (ending the split failed: %v)", err)
		}
		live.run.Weight = 0
		c.saveCanary(ctx, r, live, state, reason)
	}
	c.record(ctx, ferry.Event{Actor: d.Actor, Kind: "canary.started", Env: r.env.Name, Commit: d.Commit, BuildID: d.BuildID,
		Message: fmt.Sprintf("canary of %s %d to %s: %s in %d steps", d.Kind, d.ID, r.env.Name, ferry.ShortSHA(d.Commit), len(cfg.Steps))})

	for i := 0; i < len(cfg.Steps); i++ {
		step := cfg.Steps[i]
		split.Weight = step.Weight
		r.mu.Lock()
		live.run.Step, live.run.Weight = i, step.Weight
		r.mu.Unlock()
		// Recorded before the split changes anything, so that ferry
		// stopped at any point from here finds the canary at its next
		// start and ends its split (recoverCanaries).
		c.saveCanary(ctx, r, live, live.run.State, live.run.Reason)
		if err := sp.Split(ctx, split, progress); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			end(ferry.CanaryAborted, fmt.Sprintf("split at %d%% failed: %v", step.Weight, err))
			return fmt.Errorf("split at %d%%: %w", step.Weight, err)
		}
		next, err := c.canaryStep(ctx, r, d, live, fig, step)
		switch {
		case ctx.Err() != nil:
			return ctx.Err() // shutting down: the next start ends the split and aborts the canary
		case err != nil:
			end(ferry.CanaryAborted, err.Error())
			c.record(ctx, ferry.Event{Actor: d.Actor, Kind: "canary.aborted", Env: r.env.Name, Commit: d.Commit, BuildID: d.BuildID,
				Message: fmt.Sprintf("canary of %s %d to %s: %s aborted at %d%%", d.Kind, d.ID, r.env.Name, ferry.ShortSHA(d.Commit), step.Weight), Reason: err.Error()})
			return err
		case next == "promote":
			i = len(cfg.Steps) // skip the remaining steps
		}
	}
	if err := c.apply(ctx, r, d, c.spec(r, d), progress); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		end(ferry.CanaryAborted, fmt.Sprintf("rolling the stable replicas to the canary failed: %v", err))
		return err
	}
	end(ferry.CanaryPromoted, live.run.Reason)
	c.record(ctx, ferry.Event{Actor: d.Actor, Kind: "canary.promoted", Env: r.env.Name, Commit: d.Commit, BuildID: d.BuildID,
		Message: fmt.Sprintf("canary of %s %d to %s: %s promoted", d.Kind, d.ID, r.env.Name, ferry.ShortSHA(d.Commit)), Reason: live.run.Reason})
	return nil
}

// canaryStep runs one step at its weight until it passes (""), a person
// promotes the canary ("promote"), or it fails (a *canaryAbort).
func (c *Controller) canaryStep(ctx context.Context, r *envRunner, d *ferry.Deployment, live *liveCanary, fig FigureSource, step ferry.CanaryStep) (string, error) {
	a := r.env.Canary.Analysis
	limits := analysis.Limits{MinRequests: a.MinRequests, MaxErrorRate: a.MaxErrorRate, MaxP99: a.MaxP99}
	start := c.now()
	// base is the reading the step's span starts from, at spanStart; a
	// first reading that fails is taken again at the next judgement,
	// which is inconclusive until then.
	base, err := fig.Figures(ctx)
	haveBase, spanStart := err == nil, start
	if err != nil {
		c.log.Warn("read canary figures", "env", r.env.Name, "err", err)
	}
	r.mu.Lock()
	live.run.StepStarted, live.verdict, live.span, live.spanFor = start, nil, nil, 0
	if live.since == nil {
		live.since = base
	}
	since := live.since
	r.mu.Unlock()
	c.saveCanary(ctx, r, live, live.run.State, live.run.Reason)
	judgedSince := start // the last passing verdict, or the step's start
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case cmd := <-live.cmds:
			next, err := c.canaryCommand(ctx, r, live, cmd, &judgedSince)
			cmd.done <- err
			switch {
			case next == "abort":
				return "", &canaryAbort{msg: fmt.Sprintf("canary aborted at %d%% by %s: %s", step.Weight, cmd.actor, cmd.reason)}
			case next == "promote":
				return "promote", nil
			}
			continue
		case <-c.cfg.After(a.Interval):
		}
		now := c.now()
		against := ferry.TrackBaseline
		if !r.env.Canary.Baseline {
			against = ferry.TrackStable
		}
		var v analysis.Verdict
		cur, err := fig.Figures(ctx)
		switch _, splitting := cur[ferry.TrackCanary]; {
		case err != nil:
			// A failed reading judges nothing, and counts towards the
			// inconclusive timeout like too little traffic: reads that
			// keep failing pause the canary, never pass it.
			c.log.Warn("read canary figures", "env", r.env.Name, "err", err)
			v = analysis.Verdict{Outcome: analysis.Inconclusive, Reasons: []string{fmt.Sprintf("reading the figures failed: %v", err)}}
			r.mu.Lock()
			live.verdict = &v
			r.mu.Unlock()
		case !splitting:
			// The runtime runs no split any more (a node that restarted
			// brings back the stable replicas only): nothing is left to
			// judge, and the canary must not be promoted.
			return "", &canaryAbort{msg: fmt.Sprintf("canary aborted at %d%%: the runtime no longer runs the split (did it restart?)", step.Weight)}
		case !haveBase:
			base, haveBase, spanStart = cur, true, now
			v = analysis.Verdict{Outcome: analysis.Inconclusive, Reasons: []string{"the step's figures start only now: its first reading failed"}}
			r.mu.Lock()
			live.verdict = &v
			r.mu.Unlock()
		default:
			span, judged := map[string]analysis.Figures{}, map[string]analysis.Figures{}
			for track, f := range cur {
				span[track], judged[track] = sub(f, base[track]), sub(f, since[track])
			}
			v = analysis.Judge(limits, judged[against], judged[ferry.TrackCanary])
			r.mu.Lock()
			live.span, live.spanFor, live.verdict = span, now.Sub(spanStart), &v
			r.mu.Unlock()
		}
		switch v.Outcome {
		case analysis.Fail:
			c.saveCanary(ctx, r, live, live.run.State, live.run.Reason)
			return "", &canaryAbort{msg: fmt.Sprintf("canary failed at %d%%: %s; canary %s, %s %s", step.Weight, strings.Join(v.Reasons, "; "), summary(v.Canary), against, summary(v.Baseline))}
		case analysis.Inconclusive:
			if live.run.State == ferry.CanaryRunning && now.Sub(judgedSince) >= a.Inconclusive {
				reason := fmt.Sprintf("inconclusive for %s at %d%%: %s", now.Sub(judgedSince).Round(time.Second), step.Weight, strings.Join(v.Reasons, "; "))
				c.saveCanary(ctx, r, live, ferry.CanaryPaused, reason)
				c.record(ctx, ferry.Event{Actor: "ferry", Kind: "canary.paused", Env: r.env.Name, Commit: d.Commit, BuildID: d.BuildID,
					Message: fmt.Sprintf("canary of %s %d to %s: %s paused at %d%%", d.Kind, d.ID, r.env.Name, ferry.ShortSHA(d.Commit), step.Weight), Reason: reason})
				continue
			}
		case analysis.Pass:
			judgedSince = now
			if live.run.State == ferry.CanaryRunning && now.Sub(start) >= step.For {
				c.saveCanary(ctx, r, live, live.run.State, live.run.Reason)
				return "", nil
			}
		}
		c.saveCanary(ctx, r, live, live.run.State, live.run.Reason)
	}
}

// canaryCommand applies a person's command to the live canary; next is
// "abort" or "promote" when the step ends by it.
func (c *Controller) canaryCommand(ctx context.Context, r *envRunner, live *liveCanary, cmd canaryCmd, judgedSince *time.Time) (next string, err error) {
	what := ""
	switch cmd.kind {
	case "pause":
		if live.run.State == ferry.CanaryPaused {
			return "", ferry.Errorf(ferry.ECONFLICT, "the canary on %s is paused already: %s", r.env.Name, live.run.Reason)
		}
		c.saveCanary(ctx, r, live, ferry.CanaryPaused, "paused by "+cmd.actor+": "+cmd.reason)
		what = "paused"
	case "resume":
		if live.run.State != ferry.CanaryPaused {
			return "", ferry.Errorf(ferry.ECONFLICT, "the canary on %s is not paused", r.env.Name)
		}
		*judgedSince = c.now() // a fresh wait before the next pause for too little traffic
		c.saveCanary(ctx, r, live, ferry.CanaryRunning, "")
		what = "resumed"
	case "abort":
		what, next = "aborted", "abort"
	case "promote":
		r.mu.Lock()
		live.run.Reason = fmt.Sprintf("promoted by %s at %d%%, skipping the remaining steps: %s", cmd.actor, live.run.Weight, cmd.reason)
		r.mu.Unlock()
		what, next = "promoted", "promote"
	}
	if what != "aborted" && what != "promoted" { // those two are recorded when the canary ends
		c.record(ctx, ferry.Event{Actor: cmd.actor, Kind: "canary." + what, Env: r.env.Name,
			Message: fmt.Sprintf("canary of deployment %d to %s %s at %d%%", live.run.DeploymentID, r.env.Name, what, live.run.Weight), Reason: cmd.reason})
	}
	return next, nil
}

// saveCanary records the live canary in state with reason, unless the
// ledger holds that already (savedAs).
func (c *Controller) saveCanary(ctx context.Context, r *envRunner, live *liveCanary, state ferry.CanaryState, reason string) {
	r.mu.Lock()
	live.run.State, live.run.Reason = state, reason
	now := savedOf(live.run, live.verdict)
	if now == live.saved && !live.run.UpdatedAt.IsZero() {
		r.mu.Unlock()
		c.changed.Notify() // the figures moved
		return
	}
	live.saved = now
	live.run.UpdatedAt = c.now()
	if live.verdict != nil {
		live.run.Verdict, _ = json.Marshal(live.verdict)
	} else {
		live.run.Verdict = nil
	}
	run := live.run
	r.mu.Unlock()
	if err := c.cfg.Canaries.SaveCanary(context.WithoutCancel(ctx), &run); err != nil {
		c.log.Error("record canary", "env", r.env.Name, "deployment", run.DeploymentID, "err", err)
	}
	c.changed.Notify()
}

func sub(a, b analysis.Figures) analysis.Figures {
	return analysis.Figures{Requests: a.Requests - b.Requests, Errors: a.Errors - b.Errors, Latency: a.Latency.Sub(b.Latency)}
}

func summary(s analysis.Summary) string {
	return fmt.Sprintf("%d requests, %.2f%% errors, p50 %s, p99 %s", s.Requests, 100*s.ErrorRate, s.P50, s.P99)
}

// Canary returns env's canary: the running one with this step's figures,
// or the last one recorded.
// LiveCanaries returns the canaries that run (or are paused) now, by
// environment, from memory only: what /metrics exports on every scrape.
func (c *Controller) LiveCanaries() map[string]CanaryStatus {
	out := map[string]CanaryStatus{}
	for _, r := range c.envs {
		r.mu.Lock()
		if live := r.canary; live != nil {
			run := live.run
			out[r.env.Name] = CanaryStatus{Run: &run, Active: true, Tracks: live.span, Span: live.spanFor, Verdict: live.verdict,
				StepFor: r.env.Canary.Steps[run.Step].For}
		}
		r.mu.Unlock()
	}
	return out
}

func (c *Controller) Canary(ctx context.Context, env string) (CanaryStatus, error) {
	r, err := c.env(env)
	if err != nil {
		return CanaryStatus{}, err
	}
	if r.env.Canary == nil {
		return CanaryStatus{}, ferry.Errorf(ferry.ENOTFOUND, "%s has no canary strategy (strategy.canary in ferry.yaml)", env)
	}
	r.mu.Lock()
	live := r.canary
	if live != nil {
		run := live.run
		st := CanaryStatus{Run: &run, Active: true, Tracks: live.span, Span: live.spanFor, Verdict: live.verdict, StepFor: r.env.Canary.Steps[run.Step].For}
		r.mu.Unlock()
		return st, nil
	}
	r.mu.Unlock()
	runs, err := c.cfg.Canaries.Canaries(ctx, c.cfg.App, env, nil, 1)
	if err != nil {
		return CanaryStatus{}, err
	}
	if len(runs) == 0 {
		return CanaryStatus{}, nil
	}
	st := CanaryStatus{Run: runs[0]}
	if len(runs[0].Verdict) > 0 {
		var v analysis.Verdict
		if json.Unmarshal(runs[0].Verdict, &v) == nil {
			st.Verdict = &v
		}
	}
	return st, nil
}

// CanaryPause holds env's running canary at its step (its judgements go
// on: a failing canary still aborts); CanaryResume lets it go on.
func (c *Controller) CanaryPause(ctx context.Context, env, actor, reason string) error {
	return c.canaryDo(ctx, env, canaryCmd{kind: "pause", actor: actor, reason: reason})
}

// CanaryResume lets a paused canary go on from its step.
func (c *Controller) CanaryResume(ctx context.Context, env, actor, reason string) error {
	return c.canaryDo(ctx, env, canaryCmd{kind: "resume", actor: actor, reason: reason})
}

// CanaryAbort aborts env's running canary: the split ends, the release's
// deployment fails, and the stable version keeps every request.
func (c *Controller) CanaryAbort(ctx context.Context, env, actor, reason string) error {
	return c.canaryDo(ctx, env, canaryCmd{kind: "abort", actor: actor, reason: reason})
}

// CanaryPromote skips the remaining steps of env's running canary, which
// then takes every replica; it needs a reason.
func (c *Controller) CanaryPromote(ctx context.Context, env, actor, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return ferry.Errorf(ferry.EINVALID, "promoting a canary past its steps needs a reason (--reason)")
	}
	return c.canaryDo(ctx, env, canaryCmd{kind: "promote", actor: actor, reason: reason})
}

// canaryDo hands cmd to env's running canary and waits for its answer.
func (c *Controller) canaryDo(ctx context.Context, env string, cmd canaryCmd) error {
	r, err := c.env(env)
	if err != nil {
		return err
	}
	r.mu.Lock()
	live := r.canary
	r.mu.Unlock()
	if live == nil {
		return ferry.Errorf(ferry.ECONFLICT, "no canary runs on %s", env)
	}
	cmd.done = make(chan error, 1)
	select {
	case live.cmds <- cmd:
	case <-live.ended:
		return ferry.Errorf(ferry.ECONFLICT, "no canary runs on %s any more: it has just ended", env)
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopped():
		return ferry.Errorf(ferry.EUNAVAILABLE, "ferry is stopping")
	}
	select {
	case err := <-cmd.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// preemptCanary aborts r's running canary, if any, for what comes next:
// a rollback, or a push that moves the branch away from the canary's
// commit, never waits for a canary's analysis. It returns once the
// canary ended its split (or had left its steps: it is then being
// promoted, and what comes next takes its turn after it).
func (c *Controller) preemptCanary(ctx context.Context, r *envRunner, actor, reason string) {
	r.mu.Lock()
	live := r.canary
	r.mu.Unlock()
	if live == nil {
		return
	}
	c.abortLive(ctx, live, actor, reason)
}

// abortLive hands live an abort and waits until runCanary has returned.
func (c *Controller) abortLive(ctx context.Context, live *liveCanary, actor, reason string) {
	cmd := canaryCmd{kind: "abort", actor: actor, reason: reason, done: make(chan error, 1)}
	select {
	case live.cmds <- cmd:
		<-cmd.done
	case <-live.ended:
		return
	case <-ctx.Done():
		return
	case <-c.stopped():
		return
	}
	select { // the split ends before runCanary returns
	case <-live.ended:
	case <-ctx.Done():
	case <-c.stopped():
	}
}

// preemptCanaryFor aborts r's running canary when sha, a new head of
// r's branch, is not the canary's commit: whatever the push asks (a
// rollback, or a newer release) replaces the canary.
func (c *Controller) preemptCanaryFor(ctx context.Context, r *envRunner, sha string) {
	r.mu.Lock()
	live := r.canary
	r.mu.Unlock()
	if live == nil || live.commit == sha {
		return
	}
	c.abortLive(ctx, live, "git push", fmt.Sprintf("release moved to %s by a push", ferry.ShortSHA(sha)))
}

// recoverCanaries ends what a canary of an interrupted run left: ferry
// restarted mid-canary aborts it cleanly — the split ended (the stable
// replicas keep every request), the canary recorded aborted — rather than
// resume it, since its judgement would start over from fresh figures
// without a person knowing. The deployment itself is closed as
// interrupted by recoverInterrupted.
func (c *Controller) recoverCanaries(ctx context.Context) error {
	if c.cfg.Canaries == nil {
		return nil
	}
	open, err := c.cfg.Canaries.Canaries(ctx, c.cfg.App, "", []ferry.CanaryState{ferry.CanaryRunning, ferry.CanaryPaused}, 1000)
	if err != nil {
		return fmt.Errorf("list unfinished canaries: %w", err)
	}
	for _, run := range open {
		reason := fmt.Sprintf("ferry restarted mid-canary at step %d of %d (%d%%); the stable version keeps every request", run.Step+1, run.Steps, run.Weight)
		if r, ok := c.byName[run.Env]; ok {
			if sp, ok := r.env.Runtime.(splitter); ok {
				if err := sp.EndSplit(ctx); err != nil {
					return fmt.Errorf("end the split of the interrupted canary on %s: %w", run.Env, err)
				}
			}
		}
		run.State, run.Weight, run.Reason, run.UpdatedAt = ferry.CanaryAborted, 0, reason, c.now()
		if err := c.cfg.Canaries.SaveCanary(ctx, run); err != nil {
			return fmt.Errorf("close the canary of deployment %d: %w", run.DeploymentID, err)
		}
		c.record(ctx, ferry.Event{Actor: "ferry", Kind: "canary.aborted", Env: run.Env,
			Message: fmt.Sprintf("canary of deployment %d to %s aborted", run.DeploymentID, run.Env), Reason: reason})
	}
	return nil
}
