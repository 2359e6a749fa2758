package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/ferryhq/ferry/controller"
)

// driftReuse is how long one check serves the pages of an unchanged
// controller. Drift that no controller change announces (a tag moved by
// hand in the registry or in git) shows within this time on the next page.
const driftReuse = 30 * time.Second

// driftCache shares one `status --check` among every page and matrix
// fragment rendered for the same state of the controller: a change
// notifies every open page at once, and each re-fetches the matrix, but
// the check (a git fetch, a registry request per tag) runs once. The
// controller's change channel identifies that state: a change replaces
// it. Concurrent callers wait for the check in progress; errors are not
// kept.
type driftCache struct {
	mu     sync.Mutex
	gen    <-chan struct{}
	at     time.Time
	drifts []controller.Drift
}

func (c *driftCache) check(ctx context.Context, envs Environments, now func() time.Time) ([]controller.Drift, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := envs.Changed() // before checking: a change during the check makes it stale
	if c.gen == gen && now().Sub(c.at) < driftReuse {
		return c.drifts, nil
	}
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	drifts, err := envs.Check(cctx)
	if err != nil {
		c.gen = nil
		return nil, err
	}
	c.gen, c.at, c.drifts = gen, now(), drifts
	return drifts, nil
}
