package controller

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// fakeTimer is the controller's After: each call waits until the test
// fires it, and the durations asked are recorded.
type fakeTimer struct {
	mu    sync.Mutex
	asked []time.Duration
	chans []chan time.Time
}

func (ft *fakeTimer) After(d time.Duration) <-chan time.Time {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ch := make(chan time.Time, 1)
	ft.asked, ft.chans = append(ft.asked, d), append(ft.chans, ch)
	return ch
}

func (ft *fakeTimer) waiting() int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return len(ft.chans)
}

func (ft *fakeTimer) fire() {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for _, ch := range ft.chans {
		ch <- time.Time{}
	}
	ft.chans = nil
}

// weekdays is Mon-Thu 09:00-16:00 UTC; the fixture's clock starts on
// Thursday 2026-11-26 at 23:50, outside it.
var weekdays = []ferry.Window{{Days: [7]bool{1: true, 2: true, 3: true, 4: true}, From: 9 * time.Hour, To: 16 * time.Hour, Location: time.UTC}}

// TestWindowsRefuseAndOverride: outside prod's window a promotion is
// refused naming the next opening and prod is unchanged; an admin's
// override goes through with its reason recorded; a rollback is always
// allowed; in a freeze the refusal names the freeze.
func TestWindowsRefuseAndOverride(t *testing.T) {
	f := newFixtureWith(t, func(f *relFixture) { f.windows = weekdays })
	ctx := context.Background()
	a := f.commit("master", "feat: a")
	f.inDev(a)
	_, err := f.ctrl.Promote(ctx, "prod", "", "ada", "")
	if want := "prod takes promotions only in its windows (Mon-Thu 09:00-16:00 UTC); next opening Mon 2026-11-30 09:00 UTC"; ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), want) {
		t.Fatalf("Promote on Thursday night = %v, want ECONFLICT %q", err, want)
	}
	if got := f.prod.runs().Digest; got != "" {
		t.Fatalf("prod runs %s after a refusal", got)
	}
	override := func(ref, reason string) *ferry.Deployment {
		t.Helper()
		act, err := f.ctrl.Queue(ctx, ferry.Action{Env: "prod", Kind: ferry.ActionPromote, Ref: ref, Override: true, Actor: "root", Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		if act = f.finalAction(act.ID); act.State != ferry.ActionSucceeded || !act.Override {
			t.Fatalf("override promote = %s %q (override %v)", act.State, act.Result, act.Override)
		}
		d, _ := f.ledger.Deployment(ctx, act.DeploymentID)
		return d
	}
	d := override("", "hotfix for #12")
	if !strings.HasPrefix(d.Reason, "override of release windows and freezes: hotfix for #12") || f.prod.runs().Digest != a.Digest {
		t.Errorf("override = reason %q, prod runs %s; want the override recorded and a running", d.Reason, f.prod.runs().Digest)
	}
	if evs, _ := f.ledger.Events(ctx, ledger.EventFilter{App: "app", Kind: "promote.override"}); len(evs) != 1 || evs[0].Reason != "hotfix for #12" {
		t.Errorf("promote.override events = %+v", evs)
	}
	f.clk.Advance(time.Minute)
	b := f.commit("master", "feat: b")
	f.inDev(b)
	override("", "second hotfix")
	rb, err := f.ctrl.Rollback(ctx, "prod", "", "ada", "b is broken")
	if err != nil {
		t.Fatalf("a rollback outside the window = %v, want allowed", err)
	}
	if rb = f.wait(rb.ID); rb.State != ferry.DeploymentSucceeded || f.prod.runs().Digest != a.Digest {
		t.Errorf("rollback = %s, prod runs %s; want back on a", rb.State, f.prod.runs().Digest)
	}
}

// TestFreezeRefuses: a freeze stops a promotion even inside a window,
// naming its reason and when it ends.
func TestFreezeRefuses(t *testing.T) {
	f := newFixtureWith(t, func(f *relFixture) {
		f.clk.Set(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)) // Monday, in the window
		f.windows = weekdays
		f.freezes = []ferry.Freeze{{From: f.clk.Now().Add(-time.Hour), To: f.clk.Now().Add(26 * time.Hour), Reason: "cyber monday"}}
	})
	a := f.commit("master", "feat: a")
	f.inDev(a)
	_, err := f.ctrl.Promote(context.Background(), "prod", "", "ada", "")
	if want := "prod is frozen from Mon 2026-11-30 09:00 UTC to Tue 2026-12-01 12:00 UTC: cyber monday; next opening Tue 2026-12-01 12:00 UTC"; ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), want) {
		t.Errorf("Promote in a freeze = %v, want %q", err, want)
	}
	if got := f.prod.runs().Digest; got != "" {
		t.Errorf("prod runs %s in a freeze", got)
	}
}

// TestWhenOpenWaitsForTheOpening: promote --when-open outside the window
// stays queued, holding up no other action, until the clock reaches the
// next opening; then it is decided in its turn and deploys.
func TestWhenOpenWaitsForTheOpening(t *testing.T) {
	timer := &fakeTimer{}
	f := newFixtureWith(t, func(f *relFixture) { f.windows, f.after = weekdays, timer.After })
	ctx := context.Background()
	a := f.commit("master", "feat: a")
	f.inDev(a)
	act, err := f.ctrl.Queue(ctx, ferry.Action{Env: "prod", Kind: ferry.ActionPromote, WhenOpen: true, Actor: "ada", Reason: "monday release"})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return timer.waiting() == 1 }, "the promote to wait for the opening")
	if want := 81*time.Hour + 10*time.Minute; timer.asked[0] != want { // Thu 23:50 → Mon 09:00
		t.Errorf("waits %s, want %s", timer.asked[0], want)
	}
	if got, _ := f.ctrl.Action(ctx, act.ID); got.State != ferry.ActionQueued {
		t.Errorf("waiting action is %s, want queued", got.State)
	}
	// The wait holds no turn: a lock asked meanwhile is decided at once.
	if _, err := f.ctrl.Lock(ctx, "prod", "ada", "just checking"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctrl.Unlock(ctx, "prod", "ada", ""); err != nil {
		t.Fatal(err)
	}
	f.clk.Set(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))
	timer.fire()
	if got := f.finalAction(act.ID); got.State != ferry.ActionSucceeded || got.DeploymentID == 0 {
		t.Fatalf("promote --when-open after the opening = %s %q", got.State, got.Result)
	}
	if f.prod.runs().Digest != a.Digest {
		t.Errorf("prod runs %s, want %s", f.prod.runs().Digest, a.Digest)
	}
	if evs, _ := f.ledger.Events(ctx, ledger.EventFilter{App: "app", Kind: "promote.waiting"}); len(evs) != 1 || !strings.Contains(evs[0].Message, "2026-11-30 09:00:00 UTC") {
		t.Errorf("promote.waiting events = %+v", evs)
	}
}
