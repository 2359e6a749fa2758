package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// TestAutoPromotion: with auto: true and wait: 30m, ferry promotes the
// digest dev runs by itself, 30 minutes (by the fake clock) after it
// succeeded there and not before; a digest that failed in dev is never
// promoted (dev is back on the previous one, which prod runs); the next
// good one is.
func TestAutoPromotion(t *testing.T) {
	timer := &fakeTimer{}
	f := newFixtureWith(t, func(f *relFixture) { f.after, f.autoProd = timer.After, true })
	ctx := context.Background()
	promotes := func() []*ferry.Action {
		as, err := f.ledger.Actions(ctx, ledger.ActionFilter{App: "app", Env: "prod"})
		if err != nil {
			t.Fatal(err)
		}
		return as
	}

	a := f.commit("master", "feat: a")
	f.inDev(a)
	waitUntil(t, func() bool { return timer.waiting() > 0 }, "the auto-promoter to wait")
	if got := f.prod.runs().Digest; got != "" || len(promotes()) != 0 {
		t.Fatalf("prod runs %q with %d actions before the wait is over", got, len(promotes()))
	}
	f.clk.Advance(29 * time.Minute)
	timer.fire()
	time.Sleep(50 * time.Millisecond)
	if n := len(promotes()); n != 0 {
		t.Fatalf("%d promotions after 29m, want none", n)
	}
	f.clk.Advance(time.Minute)
	timer.fire()
	waitUntil(t, func() bool { return f.prod.runs().Digest == a.Digest }, "prod to run a after the wait")
	if as := promotes(); len(as) != 1 || as[0].Actor != "ferry (auto)" {
		t.Fatalf("promotions = %+v, want one by ferry (auto)", as)
	}

	bad := f.commit("master", "feat: breaks dev")
	f.dev.mu.Lock()
	f.dev.fail[bad.Digest] = fmt.Errorf("replica dev-1 crash-looping")
	f.dev.mu.Unlock()
	f.inDev(bad)
	f.clk.Advance(time.Hour)
	timer.fire()
	time.Sleep(50 * time.Millisecond)
	if got := f.prod.runs().Digest; got != a.Digest || len(promotes()) != 1 {
		t.Fatalf("after a digest failed in dev: prod runs %s with %d promotions, want still a and 1", got, len(promotes()))
	}

	c := f.commit("master", "feat: c")
	f.inDev(c)
	f.clk.Advance(30 * time.Minute)
	timer.fire()
	waitUntil(t, func() bool { return f.prod.runs().Digest == c.Digest }, "prod to run c after its wait")
}
