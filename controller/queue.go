package controller

import (
	"context"

	"github.com/ferryhq/ferry"
)

// One action per environment, decided when it runs (issue 13): promote,
// rollback, scale, lock, unlock and pushes to the release branch of one
// environment take turns, in the order they arrive. An action reads what
// the environment runs only once its turn has come, and a deployment it
// queues keeps the turn until it has finished, so a rollback queued
// behind a promote rolls back from the promote's result.

// turn is an environment's queue of actions: a channel of capacity one,
// whose blocked senders Go serves in arrival order.
type turn chan struct{}

func newTurn() turn { return make(turn, 1) }

// inTurn waits for r's turn, then runs act. A deployment act returns keeps
// the turn until it has finished (settle runs then); anything else gives
// the turn to the next action at once.
func (c *Controller) inTurn(ctx context.Context, r *envRunner, act func() (*ferry.Deployment, error)) (*ferry.Deployment, error) {
	select {
	case r.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ferry.Wrap(ctx.Err(), ferry.EUNAVAILABLE, "gave up waiting for the actions queued on %s", r.env.Name)
	}
	d, err := act()
	if err != nil || d == nil {
		<-r.turn
		return d, err
	}
	done := r.doneOf(d.ID)
	go func() {
		defer func() { <-r.turn }()
		if done != nil {
			select {
			case <-done:
			case <-c.stopped():
				return
			}
		}
		c.settle(context.WithoutCancel(ctx), r, d.ID)
	}()
	return d, nil
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
