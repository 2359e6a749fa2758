package dashboard

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/notify"
)

func TestPerChangeSharesOneReadPerChange(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	changed := notify.New()
	var reads atomic.Int64
	var failing atomic.Bool
	load := func(context.Context) (string, error) {
		reads.Add(1)
		if failing.Load() {
			return "", errors.New("git fetch: connection refused")
		}
		return "drift", nil
	}
	var cache perChange[string]
	ctx := context.Background()
	step := func(what string, wantReads int64) {
		t.Helper()
		v, err := cache.get(ctx, changed.Wait(), now, load)
		if err != nil || v != "drift" {
			t.Fatalf("%s: get = %q, %v; want the value", what, v, err)
		}
		if got := reads.Load(); got != wantReads {
			t.Fatalf("%s: %d reads, want %d", what, got, wantReads)
		}
	}

	step("first page", 1)
	var wg sync.WaitGroup
	for range 8 { // every open page re-fetching its parts at once
		wg.Go(func() { cache.get(ctx, changed.Wait(), now, load) })
	}
	wg.Wait()
	step("eight more pages, no change", 1)
	changed.Notify()
	step("after a controller change", 2)
	now = now.Add(reuseFor - time.Second)
	step("just before the reuse limit", 2)
	now = now.Add(time.Second)
	step("at the reuse limit", 3)

	failing.Store(true)
	changed.Notify()
	if _, err := cache.get(ctx, changed.Wait(), now, load); err == nil {
		t.Fatal("a failed read returned no error")
	}
	failing.Store(false)
	step("after a failed read (not kept)", 5)
}
