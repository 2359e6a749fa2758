package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// DefaultDriftEvery is how often the leader's controller checks for drift
// when Config.DriftEvery is 0.
const DefaultDriftEvery = time.Minute

// Audit event kinds of the periodic drift check.
const (
	EventDriftFound    = "drift.found"
	EventDriftResolved = "drift.resolved"
)

// reported is a drift the periodic check recorded as found and not yet as
// resolved: its environment, its identity ("<what>: want <want>", see
// driftKey) and what it got when found.
type reported struct {
	env, key, got string
}

// driftKey is what makes two checks' drifts the same drift: the
// environment, what disagrees and what it should be. What it got instead
// may change (a tag moved twice) without the drift being news again.
func driftKey(d Drift) string { return d.What + ": want " + d.Want }

func foundMessage(d Drift) string {
	return fmt.Sprintf("drift in %s: %s, got %s; fix: %s", d.Env, driftKey(d), d.Got, d.Fix)
}

func resolvedMessage(r reported) string {
	return fmt.Sprintf("drift resolved in %s: %s, got it (was %s)", r.env, r.key, r.got)
}

// parseDriftEvent is the drift a drift.found or drift.resolved event
// (foundMessage, resolvedMessage) tells of, or false for another message.
func parseDriftEvent(e ferry.Event) (reported, bool) {
	var prefix string
	switch e.Kind {
	case EventDriftFound:
		prefix = "drift in " + e.Env + ": "
	case EventDriftResolved:
		prefix = "drift resolved in " + e.Env + ": "
	default:
		return reported{}, false
	}
	rest, ok := strings.CutPrefix(e.Message, prefix)
	if !ok {
		return reported{}, false
	}
	key, got, ok := strings.Cut(rest, ", got ")
	if !ok {
		return reported{}, false
	}
	if e.Kind == EventDriftFound {
		if i := strings.LastIndex(got, "; fix: "); i >= 0 {
			got = got[:i]
		}
	} else {
		got = strings.TrimSuffix(strings.TrimPrefix(got, "it (was "), ")")
	}
	return reported{env: e.Env, key: key, got: got}, true
}

// reportedDrifts replays the newest drift events of the ledger (oldest
// first): the drifts a previous run reported and did not see resolved, so
// that a restart neither reports them again nor forgets to resolve them.
func (c *Controller) reportedDrifts(ctx context.Context) (map[string]reported, error) {
	es, err := c.ledger.Events(ctx, ledger.EventFilter{App: c.cfg.App, Kind: "drift.", Limit: ledger.MaxLimit})
	if err != nil {
		return nil, fmt.Errorf("read the reported drifts: %w", err)
	}
	open := map[string]reported{}
	for i := len(es) - 1; i >= 0; i-- { // newest first
		r, ok := parseDriftEvent(es[i])
		if !ok {
			continue
		}
		if es[i].Kind == EventDriftFound {
			open[r.env+"\x00"+r.key] = r
		} else {
			delete(open, r.env+"\x00"+r.key)
		}
	}
	return open, nil
}

// driftLoop runs the drift check at every tick until ctx ends, once every
// environment was restored (a restore is no drift), and records what
// changed since the previous check (driftStep).
func (c *Controller) driftLoop(ctx context.Context, ticks <-chan time.Time) {
	c.restored.Wait()
	var open map[string]reported
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		if open == nil {
			var err error
			if open, err = c.reportedDrifts(ctx); err != nil {
				if ctx.Err() == nil {
					c.log.Error("drift check", "err", err)
				}
				continue
			}
		}
		if err := c.driftStep(ctx, open); err != nil && ctx.Err() == nil {
			c.log.Warn("drift check", "err", err)
		}
	}
}

// driftStep runs Check and records drift.found for each drift not in open
// and drift.resolved for each drift of open that is gone, updating open.
// An environment that rolls out (during the check or when it ends) is
// left as it was: what a rollout changes is no drift.
func (c *Controller) driftStep(ctx context.Context, open map[string]reported) error {
	drifts, err := c.Check(ctx)
	if err != nil {
		return err
	}
	busy := map[string]bool{}
	for _, d := range drifts {
		if d.What == "rollout" {
			busy[d.Env] = true
		}
	}
	for _, r := range c.envs {
		r.mu.Lock()
		if r.active != nil || r.pending != nil {
			busy[r.env.Name] = true
		}
		r.mu.Unlock()
	}
	seen := map[string]bool{}
	for _, d := range drifts {
		if busy[d.Env] {
			continue
		}
		id := d.Env + "\x00" + driftKey(d)
		seen[id] = true
		if _, ok := open[id]; ok {
			continue
		}
		open[id] = reported{env: d.Env, key: driftKey(d), got: d.Got}
		c.record(ctx, ferry.Event{Actor: "ferry", Kind: EventDriftFound, Env: d.Env, Message: foundMessage(d)})
	}
	for _, id := range slices.Sorted(maps.Keys(open)) { // in a stable order
		r := open[id]
		if seen[id] || busy[r.env] {
			continue
		}
		delete(open, id)
		c.record(ctx, ferry.Event{Actor: "ferry", Kind: EventDriftResolved, Env: r.env, Message: resolvedMessage(r)})
	}
	return nil
}
