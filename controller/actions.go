package controller

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// An action is what an operator asks of an environment (promote,
// rollback, scale, lock, unlock). Intent before effect: it is recorded
// queued before it waits for its turn (queue.go), moves to running when
// the turn comes, and ends with its own result — succeeded, refused (a
// rule said no in its turn, the rule's sentence its result) or failed. An
// action that starts a deployment records it in the same ledger write
// (ledger.ActionStore.CreateActionDeployment), keeps the turn until the
// deployment has finished and ends as it did. At every start the actions
// a crash left open are closed truthfully (recoverActions).

// outcome is how an action was decided once its turn came: the deployment
// it started, the lock it took or lifted, what it did, or why not.
type outcome struct {
	d      *ferry.Deployment
	lock   *ferry.Lock
	result string
	// failed says the result is a failure (a deployment that did not
	// succeed) although nothing returned an error.
	failed bool
	err    error
}

// step is an action's work in its turn.
type step func(ctx context.Context, r *envRunner, a *ferry.Action) outcome

// Queue records action a — its Env, Kind and the request's parameters
// (Ref, Replicas, AllowDowngrade), Actor and Reason — as queued and
// returns it at once. It then runs in the background in its
// environment's turn, until the controller stops. What can be judged
// without the turn (the environment, the arguments) is refused here with
// the error; what depends on the environment's state is decided in the
// turn and becomes the action's result.
func (c *Controller) Queue(ctx context.Context, a ferry.Action) (*ferry.Action, error) {
	rec, _, err := c.submit(ctx, a)
	return rec, err
}

// Action returns the action id of the controller's app.
func (c *Controller) Action(ctx context.Context, id int64) (*ferry.Action, error) {
	a, err := c.ledger.Action(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.App != c.cfg.App {
		return nil, ledger.ActionNotFound(id)
	}
	return a, nil
}

// Actions lists the app's actions newest first; an environment named in
// f must exist.
func (c *Controller) Actions(ctx context.Context, f ledger.ActionFilter) ([]*ferry.Action, error) {
	if f.Env != "" {
		if _, err := c.env(f.Env); err != nil {
			return nil, err
		}
	}
	f.App = c.cfg.App
	return c.ledger.Actions(ctx, f)
}

// ask queues a and waits until it has been decided in its turn: the
// synchronous form of Queue, for the methods below and the dashboard.
// The action goes on when ctx ends first.
func (c *Controller) ask(ctx context.Context, a ferry.Action) outcome {
	rec, decided, err := c.submit(ctx, a)
	if err != nil {
		return outcome{err: err}
	}
	select {
	case o := <-decided:
		return o
	case <-ctx.Done():
		return outcome{err: ferry.Wrap(ctx.Err(), ferry.EUNAVAILABLE, "gave up waiting for the actions queued on %s (action %d stays queued)", rec.Env, rec.ID)}
	}
}

// submit checks a, records it queued, takes its ticket and starts it in
// the background; decided gets its outcome once its turn has come.
func (c *Controller) submit(ctx context.Context, a ferry.Action) (rec *ferry.Action, decided <-chan outcome, err error) {
	r, err := c.env(a.Env)
	if err != nil {
		return nil, nil, err
	}
	work, err := c.plan(r, a)
	if err != nil {
		return nil, nil, err
	}
	return c.submitWork(ctx, r, a, work)
}

// submitWork records a queued, takes its ticket and starts work in the
// background in a's turn.
func (c *Controller) submitWork(ctx context.Context, r *envRunner, a ferry.Action, work step) (rec *ferry.Action, decided <-chan outcome, err error) {
	a.App, a.State, a.Result, a.DeploymentID = c.cfg.App, ferry.ActionQueued, "", 0
	a.CreatedAt = c.now()
	// A promote --when-open of a closed environment waits for the opening
	// before it takes a ticket: it holds up no other action meanwhile.
	waits := a.Kind == ferry.ActionPromote && a.WhenOpen && !a.Override && !release.Open(r.env.Environment, a.CreatedAt)
	// The ticket is taken with the record, so that the turns follow the
	// order of the action ids.
	r.submitMu.Lock()
	if err := c.ledger.CreateAction(ctx, &a); err != nil {
		r.submitMu.Unlock()
		return nil, nil, fmt.Errorf("record %s of %s: %w", a.Kind, a.Env, err)
	}
	var ticket uint64
	if !waits {
		ticket = r.turn.take()
	}
	r.submitMu.Unlock()
	out := make(chan outcome, 1)
	running := a
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx := c.background(ctx)
		if waits {
			if err := c.untilOpen(ctx, r, &running); err != nil {
				out <- outcome{err: err}
				return
			}
			r.submitMu.Lock()
			ticket = r.turn.take()
			r.submitMu.Unlock()
		}
		c.run(ctx, r, &running, ticket, work, out)
	}()
	c.changed.Notify()
	return &a, out, nil
}

// plan checks what can be checked of a without its turn and returns its
// work in the turn.
func (c *Controller) plan(r *envRunner, a ferry.Action) (step, error) {
	switch a.Kind {
	case ferry.ActionPromote:
		if err := release.TakesPromotions(r.env.Environment); err != nil {
			return nil, err
		}
		if a.AllowDowngrade && strings.TrimSpace(a.Reason) == "" {
			return nil, ferry.Errorf(ferry.EINVALID, "a downgrade needs a reason (--reason)")
		}
		if tooShort().MatchString(a.Ref) {
			return nil, errTooShort(a.Ref)
		}
		return func(ctx context.Context, r *envRunner, a *ferry.Action) outcome {
			d, req, err := c.promote(ctx, r, a.Ref, a.Actor, a.Reason, promoteOpts{downgrade: a.AllowDowngrade, override: a.Override}, a.ID, nil)
			if req != nil {
				return outcome{result: pendingResult(req, r.env.Approval)}
			}
			return outcome{d: d, err: err}
		}, nil
	case ferry.ActionRollback:
		if err := release.TakesRollbacks(r.env.Environment); err != nil {
			return nil, err
		}
		// A rollback never waits for a canary's analysis: the running
		// canary is aborted first, so that the rollback's turn comes.
		c.preemptCanary(context.Background(), r, a.Actor, "rollback: "+cmp.Or(a.Reason, "rollback asked"))
		return func(ctx context.Context, r *envRunner, a *ferry.Action) outcome {
			d, err := c.rollback(ctx, r, a.Ref, a.Actor, a.Reason, a.ID)
			return outcome{d: d, err: err}
		}, nil
	case ferry.ActionScale:
		if a.Replicas < 1 || a.Replicas > 64 {
			return nil, ferry.Errorf(ferry.EINVALID, "replicas must be between 1 and 64, not %d", a.Replicas)
		}
		return func(ctx context.Context, r *envRunner, a *ferry.Action) outcome {
			d, err := c.scale(ctx, r, a.Replicas, a.Actor, a.Reason, a.ID)
			return outcome{d: d, err: err}
		}, nil
	case ferry.ActionLock:
		if strings.TrimSpace(a.Reason) == "" {
			return nil, ferry.Errorf(ferry.EINVALID, "a lock needs a reason (--reason)")
		}
		return c.lock, nil
	case ferry.ActionUnlock:
		return c.unlock, nil
	}
	return nil, ferry.Errorf(ferry.EINVALID, "unknown action kind %q", a.Kind)
}

// run is action a in the background: it waits for a's turn, runs work,
// hands the outcome to decided and records a's result — once its
// deployment, if it started one, has finished.
func (c *Controller) run(ctx context.Context, r *envRunner, a *ferry.Action, ticket uint64, work step, decided chan<- outcome) {
	if err := r.turn.wait(ctx, ticket); err != nil {
		// The controller stops: a stays queued for the next start to close.
		decided <- outcome{err: ferry.Wrap(err, ferry.EUNAVAILABLE, "ferry stopped before action %d's turn on %s came", a.ID, r.env.Name)}
		return
	}
	if err := c.ledger.TransitionAction(ctx, a.ID, ferry.ActionQueued, ferry.ActionRunning, "", c.now()); err != nil {
		r.turn.pass()
		decided <- outcome{err: fmt.Errorf("start action %d: %w", a.ID, err)}
		return
	}
	a.State = ferry.ActionRunning
	c.changed.Notify()
	o := work(ctx, r, a)
	decided <- o
	// What happened is recorded even when the controller stops meanwhile.
	ctx = context.WithoutCancel(ctx)
	if o.err != nil || o.d == nil {
		c.finish(ctx, a, o)
		r.turn.pass()
		return
	}
	id := o.d.ID
	c.keepTurn(ctx, r, id, func() { c.finish(ctx, a, c.followed(ctx, id)) })
}

// followed is the outcome of an action whose deployment id has finished:
// its fate.
func (c *Controller) followed(ctx context.Context, id int64) outcome {
	d, err := c.ledger.Deployment(ctx, id)
	if err != nil {
		return outcome{err: fmt.Errorf("read deployment %d: %w", id, err)}
	}
	if d.State == ferry.DeploymentSucceeded {
		return outcome{result: fmt.Sprintf("deployment %d succeeded", id)}
	}
	return outcome{failed: true, result: fmt.Sprintf("deployment %d %s: %s", id, d.State, d.Error)}
}

// finish records how a ended: refused when a rule said no (an error the
// user can act on), failed on anything else, succeeded otherwise.
func (c *Controller) finish(ctx context.Context, a *ferry.Action, o outcome) {
	to, result := ferry.ActionSucceeded, o.result
	if o.failed {
		to = ferry.ActionFailed
	}
	if o.err != nil {
		c.log.Warn("action ended without effect", "id", a.ID, "kind", a.Kind, "env", a.Env, "err", o.err)
		to, result = ferry.ActionFailed, ferry.ErrorMessage(o.err)
		if isRefusal(o.err) {
			to = ferry.ActionRefused
		}
	}
	if err := c.ledger.TransitionAction(ctx, a.ID, ferry.ActionRunning, to, result, c.now()); err != nil {
		c.log.Error("finish action", "id", a.ID, "err", err)
		return
	}
	c.changed.Notify()
}

// isRefusal reports whether err is a rule's no rather than a breakage.
func isRefusal(err error) bool {
	switch ferry.ErrorCode(err) {
	case ferry.EINVALID, ferry.ENOTFOUND, ferry.ECONFLICT, ferry.EFORBIDDEN:
		return true
	}
	return false
}

// lock is a lock action in its turn.
func (c *Controller) lock(ctx context.Context, r *envRunner, a *ferry.Action) outcome {
	l := &ferry.Lock{App: c.cfg.App, Env: r.env.Name, Actor: a.Actor, Reason: a.Reason, CreatedAt: c.now()}
	if err := c.locks.Lock(ctx, l); err != nil {
		return outcome{err: err}
	}
	c.record(ctx, ferry.Event{Actor: a.Actor, Kind: "env.locked", Env: r.env.Name, Message: fmt.Sprintf("%s locked", r.env.Name), Reason: a.Reason})
	return outcome{lock: l, result: fmt.Sprintf("%s locked by %s: %s", l.Env, l.Actor, l.Reason)}
}

// unlock is an unlock action in its turn. A push refused while the lock
// held was reset then and stays undeployed.
func (c *Controller) unlock(ctx context.Context, r *envRunner, a *ferry.Action) outcome {
	l, err := c.locks.Unlock(ctx, c.cfg.App, r.env.Name)
	if err != nil {
		return outcome{err: err}
	}
	msg := fmt.Sprintf("%s unlocked (locked by %s: %s)", r.env.Name, l.Actor, l.Reason)
	c.record(ctx, ferry.Event{Actor: a.Actor, Kind: "env.unlocked", Env: r.env.Name, Message: msg, Reason: a.Reason})
	return outcome{lock: l, result: msg}
}

// stoppedBefore is the result of an action a crash stopped before it had
// any effect.
const stoppedBefore = "ferry stopped before it ran"

// recoverActions closes the actions a previous run left queued or
// running, after the deployments it left were closed: one that started a
// deployment ends as that deployment did; a lock or unlock whose effect
// is in the ledger succeeded; any other never took effect. Each closing
// is an event.
func (c *Controller) recoverActions(ctx context.Context) error {
	open, err := c.ledger.Actions(ctx, ledger.ActionFilter{App: c.cfg.App, States: []ferry.ActionState{ferry.ActionQueued, ferry.ActionRunning}, Limit: ledger.MaxLimit})
	if err != nil {
		return fmt.Errorf("list unfinished actions: %w", err)
	}
	for i := len(open) - 1; i >= 0; i-- { // oldest first
		a := open[i]
		to, result := c.fate(ctx, a)
		err := c.ledger.TransitionAction(ctx, a.ID, a.State, to, result, c.now())
		if ferry.ErrorCode(err) == ferry.ECONFLICT {
			continue // closed meanwhile by the run that had it
		}
		if err != nil {
			return fmt.Errorf("close action %d: %w", a.ID, err)
		}
		c.record(ctx, ferry.Event{Actor: "ferry", Kind: "action.interrupted", Env: a.Env,
			Message: fmt.Sprintf("%s %d of %s, %s when ferry stopped: %s", a.Kind, a.ID, a.Env, a.State, to), Reason: result})
	}
	return nil
}

// fate is how an action a crash left open really ended.
func (c *Controller) fate(ctx context.Context, a *ferry.Action) (ferry.ActionState, string) {
	if a.DeploymentID != 0 {
		switch o := c.followed(ctx, a.DeploymentID); {
		case o.err != nil:
			return ferry.ActionFailed, ferry.ErrorMessage(o.err)
		case o.failed:
			return ferry.ActionFailed, o.result
		}
		return ferry.ActionSucceeded, fmt.Sprintf("deployment %d succeeded", a.DeploymentID)
	}
	if a.State != ferry.ActionRunning {
		return ferry.ActionFailed, stoppedBefore
	}
	switch a.Kind {
	case ferry.ActionLock:
		if l, err := c.locks.LockOf(ctx, c.cfg.App, a.Env); err == nil && l.Actor == a.Actor && !l.CreatedAt.Before(a.StartedAt) {
			return ferry.ActionSucceeded, fmt.Sprintf("%s locked by %s: %s", l.Env, l.Actor, l.Reason)
		}
	case ferry.ActionUnlock:
		if _, err := c.locks.LockOf(ctx, c.cfg.App, a.Env); ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return ferry.ActionSucceeded, fmt.Sprintf("%s is not locked", a.Env)
		}
	}
	return ferry.ActionFailed, stoppedBefore
}
