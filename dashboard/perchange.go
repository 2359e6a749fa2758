package dashboard

import (
	"context"
	"sync"
	"time"
)

// reuseFor is how long one read serves the pages of an unchanged
// controller. What no controller change announces (a tag moved by hand in
// the registry or in git, a commit pushed to master) shows within this time
// on the next page.
const reuseFor = 30 * time.Second

// perChange shares one expensive read — the drift check (a git fetch, a
// registry request per tag), the diffs between environments (a git fetch
// each), the DORA figures, the activity charts' days of deployments — among every page and fragment rendered for the
// same state of the controller. A change notifies every open page at once
// and each re-fetches its parts, but the read runs once. The controller's
// change channel identifies that state: a change replaces it. Concurrent
// callers wait for the read in progress; a failed read is not kept.
type perChange[T any] struct {
	mu  sync.Mutex
	ok  bool
	gen <-chan struct{}
	at  time.Time
	val T
}

// get returns the value read for gen (the controller's change channel,
// taken before the read) if it is fresh, else reads it with load.
func (c *perChange[T]) get(ctx context.Context, gen <-chan struct{}, now time.Time, load func(context.Context) (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && c.gen == gen && now.Sub(c.at) < reuseFor {
		return c.val, nil
	}
	v, err := load(ctx)
	if err != nil {
		c.ok = false
		return v, err
	}
	c.ok, c.gen, c.at, c.val = true, gen, now, v
	return v, nil
}
