package dashboard

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/notify"
)

// countingEnvs counts the checks run and answers with drift or err.
type countingEnvs struct {
	fakeEnvs
	mu     sync.Mutex
	checks int
	err    error
}

func (c *countingEnvs) Check(ctx context.Context) ([]controller.Drift, error) {
	c.mu.Lock()
	c.checks++
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return c.fakeEnvs.Check(ctx)
}

func (c *countingEnvs) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checks
}

func TestDriftCacheSharesOneCheckPerChange(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	envs := &countingEnvs{fakeEnvs: fakeEnvs{changed: notify.New(), drift: []controller.Drift{{Env: "prod", What: "tag live"}}}}
	var cache driftCache
	ctx := context.Background()
	step := func(what string, wantChecks int) {
		t.Helper()
		drifts, err := cache.check(ctx, envs, clock)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(drifts) != 1 || drifts[0].What != "tag live" {
			t.Fatalf("%s: drifts = %+v, want the one drift", what, drifts)
		}
		if got := envs.count(); got != wantChecks {
			t.Fatalf("%s: %d checks run, want %d", what, got, wantChecks)
		}
	}

	step("first page", 1)
	var wg sync.WaitGroup
	for range 8 { // every open page re-fetching the matrix at once
		wg.Go(func() { cache.check(ctx, envs, clock) })
	}
	wg.Wait()
	step("eight more pages, no change", 1)
	envs.changed.Notify()
	step("after a controller change", 2)
	now = now.Add(driftReuse - time.Second)
	step("just before the reuse limit", 2)
	now = now.Add(time.Second)
	step("at the reuse limit", 3)

	envs.mu.Lock()
	envs.err = errors.New("git fetch: connection refused")
	envs.mu.Unlock()
	envs.changed.Notify()
	if _, err := cache.check(ctx, envs, clock); err == nil {
		t.Fatal("a failed check returned no error")
	}
	envs.mu.Lock()
	envs.err = nil
	envs.mu.Unlock()
	step("after a failed check (not kept)", 5)
}
