package controller

import (
	"context"
	"sync"

	"github.com/ferryhq/ferry"
)

// One action per environment, decided when it runs (issue 13): promote,
// rollback, scale, lock, unlock and pushes to the release branch of one
// environment take turns, in the order they arrive. An action reads what
// the environment runs only once its turn has come, and a deployment it
// queues keeps the turn until it has finished, so a rollback queued
// behind a promote rolls back from the promote's result. The actions
// operators ask for are recorded (actions.go); pushes take their turn
// without a record of their own.

// turn is an environment's queue of actions: a ticket lock. An action
// takes a ticket when it arrives (take, which never blocks, so the order
// of tickets is the order of arrival), waits until its ticket is served,
// and passes the turn on when done.
type turn struct {
	mu      sync.Mutex
	next    uint64          // the next ticket to give
	serving uint64          // the ticket that holds the turn
	gone    map[uint64]bool // tickets whose holder gave up waiting
	changed chan struct{}   // closed and replaced when serving moves
}

func newTurn() *turn { return &turn{gone: map[uint64]bool{}, changed: make(chan struct{})} }

// take gives the next ticket.
func (t *turn) take() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.next
	t.next++
	return n
}

// wait blocks until ticket n holds the turn, or ctx ends: then n is given
// up (passed over, or passed on if its turn had just come) and ctx's
// error returned.
func (t *turn) wait(ctx context.Context, n uint64) error {
	for {
		t.mu.Lock()
		if t.serving == n {
			t.mu.Unlock()
			return nil
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.serving == n {
				t.passLocked()
			} else {
				t.gone[n] = true
			}
			return ctx.Err()
		}
	}
}

// pass gives the turn to the next ticket still waiting.
func (t *turn) pass() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.passLocked()
}

func (t *turn) passLocked() {
	t.serving++
	for t.gone[t.serving] {
		delete(t.gone, t.serving)
		t.serving++
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// inTurn takes a ticket of r's turn, waits for it, then runs act. A
// deployment act returns keeps the turn until it has finished (settle
// runs then); anything else gives the turn to the next action at once.
func (c *Controller) inTurn(ctx context.Context, r *envRunner, act func() (*ferry.Deployment, error)) (*ferry.Deployment, error) {
	ticket := r.turn.take()
	if err := r.turn.wait(ctx, ticket); err != nil {
		return nil, ferry.Wrap(err, ferry.EUNAVAILABLE, "gave up waiting for the actions queued on %s", r.env.Name)
	}
	d, err := act()
	if err != nil || d == nil {
		r.turn.pass()
		return d, err
	}
	go c.keepTurn(context.WithoutCancel(ctx), r, d.ID, nil)
	return d, nil
}

// keepTurn holds r's turn until deployment id has finished (or the
// controller stops), settles it, runs then (when set) and passes the
// turn on.
func (c *Controller) keepTurn(ctx context.Context, r *envRunner, id int64, then func()) {
	defer r.turn.pass()
	if done := r.doneOf(id); done != nil {
		select {
		case <-done:
		case <-c.stopped():
			return
		}
	}
	c.settle(ctx, r, id)
	if then != nil {
		then()
	}
}

// doneOf is closed once r's loop has finished deployment id (or it was
// superseded); nil when that has already happened.
func (r *envRunner) doneOf(id int64) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.done[id]; ok {
		return ch
	}
	return nil
}

// finished closes the done channel of deployment id.
func (r *envRunner) finished(id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.done[id]; ok {
		close(ch)
		delete(r.done, id)
	}
}

// stopped is closed when the controller's run ends.
func (c *Controller) stopped() <-chan struct{} {
	if c.runCtx == nil {
		return nil
	}
	return c.runCtx.Done()
}

// background is the context an action runs in once recorded: it outlives
// the request that asked for it and ends with the controller's run.
func (c *Controller) background(ctx context.Context) context.Context {
	if c.runCtx != nil {
		return c.runCtx
	}
	return context.WithoutCancel(ctx)
}
