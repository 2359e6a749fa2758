package source

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Clock is the time a Poller waits on. Tests inject one they advance by
// hand; nil means the system clock.
type Clock interface {
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// MaxBackoff caps the pause between retries of a failing fetch.
const MaxBackoff = time.Minute

// Poller watches branches of a repository. Run fetches, compares each
// branch's head with the one it saw last, and calls OnHead for every branch
// whose head changed, the first sighting included; then it waits Interval,
// or less if Trigger is called, and does it again. Pushes that land between
// two polls are seen as one change to the newest head.
//
// A failed fetch is reported to OnError and retried after 1s, 2s, 4s, …,
// capped at Interval and at MaxBackoff; the first success resets the
// backoff. Trigger cuts a wait short, whichever it is.
//
// The fields must be set before Run and not changed while it runs; OnHead
// and OnError are called from Run's goroutine, one at a time, and should
// return quickly (queue the work, do not do it).
type Poller struct {
	Repo *Repo // required
	// Branches are the branches to watch; empty means every branch. A
	// watched branch that does not exist is skipped; one that is deleted is
	// logged and forgotten, so that its re-creation is a change.
	Branches []string
	// Interval between polls. Zero or less polls once at start and then
	// only when triggered (webhooks only).
	Interval time.Duration
	Clock    Clock
	OnHead   func(branch, sha string)
	// OnError hears each failed poll: the error, how many polls in a row
	// have failed, and the pause before the next attempt. Nil logs them.
	OnError func(err error, attempt int, next time.Duration)

	once    sync.Once
	trigger chan struct{}
}

func (p *Poller) init() {
	p.once.Do(func() { p.trigger = make(chan struct{}, 1) })
}

// Trigger makes Run poll now rather than at the end of its current wait.
// It never blocks; triggers that arrive while a poll is running (or while
// another trigger is pending) are merged into one more poll.
func (p *Poller) Trigger() {
	p.init()
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Run polls until ctx is done and returns ctx's error.
func (p *Poller) Run(ctx context.Context) error {
	p.init()
	clock := p.Clock
	if clock == nil {
		clock = systemClock{}
	}
	last := make(map[string]string)
	failures := 0
	for {
		err := p.poll(ctx, last)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var wait time.Duration
		if err != nil {
			failures++
			wait = p.backoff(failures)
			if p.OnError != nil {
				p.OnError(err, failures, wait)
			} else {
				p.Repo.logger.Warn("poll failed", "attempt", failures, "retryIn", wait, "err", err)
			}
		} else {
			if failures > 0 {
				p.Repo.logger.Info("poll recovered", "failedAttempts", failures)
			}
			failures = 0
			wait = p.Interval
		}
		var tick <-chan time.Time // nil: wait for a trigger only
		if wait > 0 {
			tick = clock.After(wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
		case <-p.trigger:
		}
	}
}

// backoff is the pause after the n-th failure in a row: 1s, 2s, 4s, …,
// capped at the interval and at MaxBackoff.
func (p *Poller) backoff(n int) time.Duration {
	limit := MaxBackoff
	if p.Interval > 0 && p.Interval < limit {
		limit = p.Interval
	}
	d := time.Second
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// poll fetches and reports changed heads, updating last.
func (p *Poller) poll(ctx context.Context, last map[string]string) error {
	if err := p.Repo.Fetch(ctx); err != nil {
		return err
	}
	heads, err := p.Repo.Heads(ctx)
	if err != nil {
		return err
	}
	branches := p.Branches
	if len(branches) == 0 {
		for b := range heads {
			branches = append(branches, b)
		}
		for b := range last {
			if _, ok := heads[b]; !ok {
				branches = append(branches, b)
			}
		}
		slices.Sort(branches)
	}
	for _, b := range branches {
		sha, ok := heads[b]
		old, seen := last[b]
		switch {
		case ok && sha != old:
			last[b] = sha
			p.onHead(b, sha)
		case !ok && seen:
			delete(last, b)
			p.Repo.logger.Info("branch deleted", "branch", b, "head", old)
		}
	}
	return nil
}

func (p *Poller) onHead(branch, sha string) {
	if p.OnHead != nil {
		p.OnHead(branch, sha)
	}
}
