package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fakeClock hands every wait to the test, which fires it when it likes.
type fakeClock struct{ waits chan fakeWait }

type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, fire: make(chan time.Time, 1)}
	c.waits <- w
	return w.fire
}

// pollerHarness runs a Poller and records what it reports, in order.
type pollerHarness struct {
	t      *testing.T
	p      *Poller
	clock  *fakeClock
	events chan string
	done   chan error
}

func startPoller(t *testing.T, p *Poller) *pollerHarness {
	h := &pollerHarness{t: t, p: p, clock: &fakeClock{waits: make(chan fakeWait)}, events: make(chan string, 100), done: make(chan error, 1)}
	p.Clock = h.clock
	p.OnHead = func(branch, sha string) { h.events <- fmt.Sprintf("head %s %.7s", branch, sha) }
	p.OnError = func(err error, attempt int, next time.Duration) {
		if !IsRetryable(err) {
			t.Errorf("OnError(%v): not retryable", err)
		}
		h.events <- fmt.Sprintf("error %d next %s", attempt, next)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { h.done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-h.done; err != context.Canceled {
			t.Errorf("Run() after cancel = %v, want context.Canceled", err)
		}
	})
	return h
}

// waitFor returns the next wait the poller starts, and every event it
// reported before starting it.
func (h *pollerHarness) waitFor() (fakeWait, []string) {
	h.t.Helper()
	select {
	case w := <-h.clock.waits:
		return w, h.drain()
	case err := <-h.done:
		h.t.Fatalf("Run() returned %v", err)
	case <-time.After(10 * time.Second):
		h.t.Fatalf("poller never waited; events so far %v", h.drain())
	}
	return fakeWait{}, nil
}

func (h *pollerHarness) drain() []string {
	var evs []string
	for {
		select {
		case e := <-h.events:
			evs = append(evs, e)
		default:
			return evs
		}
	}
}

// expect checks one poll: the events it reported and the wait it started.
func (h *pollerHarness) expect(what string, wantEvents []string, wantWait time.Duration) fakeWait {
	h.t.Helper()
	w, evs := h.waitFor()
	if !slices.Equal(evs, wantEvents) || w.d != wantWait {
		h.t.Errorf("%s: events %q then wait %s, want %q then %s", what, evs, w.d, wantEvents, wantWait)
	}
	return w
}

func short(sha string) string { return sha[:7] }

func TestPollerReportsNewestHead(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	c1 := up.commit("one", map[string]string{"f": "1"})
	repo := Open(up.bare, filepath.Join(t.TempDir(), "app.git"), nil)
	h := startPoller(t, &Poller{Repo: repo, Branches: []string{"master", "release"}, Interval: 30 * time.Second})

	w := h.expect("first poll", []string{"head master " + short(c1)}, 30*time.Second)
	w.fire <- baseTime
	w = h.expect("poll without pushes", nil, 30*time.Second)

	// Three pushes between two polls: one report, of the newest.
	up.commit("two", map[string]string{"f": "2"})
	up.commit("three", map[string]string{"f": "3"})
	c4 := up.commit("four", map[string]string{"f": "4"})
	w.fire <- baseTime
	w = h.expect("after three pushes", []string{"head master " + short(c4)}, 30*time.Second)

	// A watched branch appears; an unwatched one is not reported.
	up.git("branch", "release", c1)
	up.git("branch", "wip")
	up.push()
	w.fire <- baseTime
	w = h.expect("new branches", []string{"head release " + short(c1)}, 30*time.Second)

	// Deleted and re-created at the same commit: a change again.
	up.git("branch", "-D", "release")
	up.push()
	w.fire <- baseTime
	w = h.expect("release deleted", nil, 30*time.Second)
	up.git("branch", "release", c1)
	up.push()
	w.fire <- baseTime
	h.expect("release re-created", []string{"head release " + short(c1)}, 30*time.Second)
}

func TestPollerAllBranches(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	c1 := up.commit("one", map[string]string{"f": "1"})
	up.git("branch", "b")
	up.git("branch", "a")
	up.push()
	repo := Open(fileURL(up.bare), filepath.Join(t.TempDir(), "app.git"), nil)
	h := startPoller(t, &Poller{Repo: repo, Interval: time.Minute})
	h.expect("first poll", []string{"head a " + short(c1), "head b " + short(c1), "head master " + short(c1)}, time.Minute)
}

func TestPollerTrigger(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	c1 := up.commit("one", map[string]string{"f": "1"})
	repo := Open(up.bare, filepath.Join(t.TempDir(), "app.git"), nil)
	p := &Poller{Repo: repo, Branches: []string{"master"}, Interval: time.Hour}
	p.Trigger() // before Run: merged into the first poll's follow-up
	h := startPoller(t, p)
	h.expect("first poll", []string{"head master " + short(c1)}, time.Hour)
	h.expect("pending trigger", nil, time.Hour)

	c2 := up.commit("two", map[string]string{"f": "2"})
	p.Trigger() // a webhook: no need to wait the hour
	h.expect("triggered poll", []string{"head master " + short(c2)}, time.Hour)
}

func TestPollerWebhooksOnly(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	c1 := up.commit("one", map[string]string{"f": "1"})
	repo := Open(up.bare, filepath.Join(t.TempDir(), "app.git"), nil)
	seen := make(chan string, 10)
	p := &Poller{Repo: repo, Branches: []string{"master"}, Clock: &fakeClock{waits: make(chan fakeWait)},
		OnHead: func(b, sha string) { seen <- sha }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	// With no interval the poller must never ask the clock to wait: a
	// call to After would block on the unbuffered waits channel forever.
	if got := <-seen; got != c1 {
		t.Errorf("first OnHead = %.7s, want %.7s", got, c1)
	}
	c2 := up.commit("two", map[string]string{"f": "2"})
	p.Trigger()
	if got := <-seen; got != c2 {
		t.Errorf("OnHead after Trigger = %.7s, want %.7s", got, c2)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run() = %v, want context.Canceled", err)
	}
}

func TestPollerBackoff(t *testing.T) {
	t.Parallel()
	// The repository does not exist yet: every poll fails until it does.
	up := &upstream{t: t, work: filepath.Join(t.TempDir(), "work"), bare: filepath.Join(t.TempDir(), "later.git")}
	repo := Open(up.bare, filepath.Join(t.TempDir(), "app.git"), nil)
	h := startPoller(t, &Poller{Repo: repo, Branches: []string{"master"}, Interval: 10 * time.Second})

	for i, next := range []time.Duration{1, 2, 4, 8, 10, 10} {
		next *= time.Second
		w := h.expect(fmt.Sprintf("failure %d", i+1), []string{fmt.Sprintf("error %d next %s", i+1, next)}, next)
		w.fire <- baseTime
	}
	w := h.expect("failure 7", []string{"error 7 next 10s"}, 10*time.Second)

	// The repository appears: the next poll succeeds and the interval is back.
	gitIn(t, "", "init", "--quiet", "--bare", "--initial-branch=master", up.bare)
	gitIn(t, "", "init", "--quiet", "--initial-branch=master", up.work)
	up.git("remote", "add", "origin", up.bare)
	c1 := up.commit("one", map[string]string{"f": "1"})
	w.fire <- baseTime
	w = h.expect("recovered", []string{"head master " + short(c1)}, 10*time.Second)

	// A new failure starts the backoff from 1s again.
	if err := os.Rename(up.bare, up.bare+".moved"); err != nil {
		t.Fatal(err)
	}
	w.fire <- baseTime
	h.expect("failure after recovery", []string{"error 1 next 1s"}, time.Second)
}

func TestBackoffCap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		interval time.Duration
		n        int
		want     time.Duration
	}{
		{30 * time.Second, 1, time.Second},
		{30 * time.Second, 5, 16 * time.Second},
		{30 * time.Second, 6, 30 * time.Second},
		{time.Hour, 6, 32 * time.Second},
		{time.Hour, 7, time.Minute},
		{time.Hour, 1000, time.Minute},
		{0, 1000, time.Minute},
		{500 * time.Millisecond, 1, 500 * time.Millisecond},
	} {
		p := &Poller{Interval: tc.interval}
		if got := p.backoff(tc.n); got != tc.want {
			t.Errorf("backoff(%d) with interval %s = %s, want %s", tc.n, tc.interval, got, tc.want)
		}
	}
}
