package ledgertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// testLease walks the lease through a sequence of servers: take, refuse a
// second, renew, expire, take over with the next term, lose, resign.
func testLease(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	const ttl = 10 * time.Second

	_, err := s.Leader(ctx, "app")
	wantError(t, "Leader(never led)", err, ferry.ENOTFOUND, "app has never had a leader")

	type want struct {
		holder string
		term   int64
		until  time.Time
		code   string // of the call's error
	}
	steps := []struct {
		name string
		call func() (*ledger.Lease, error)
		want want
	}{
		{"a takes the free lease", func() (*ledger.Lease, error) {
			return s.Campaign(ctx, "app", "a", "127.0.0.1:1", ttl, at(0))
		}, want{"a", 1, at(ttl), ""}},
		{"b is refused while a's lease is live", func() (*ledger.Lease, error) {
			return s.Campaign(ctx, "app", "b", "127.0.0.1:2", ttl, at(5*time.Second))
		}, want{"a", 1, at(ttl), ferry.ECONFLICT}},
		{"a renews", func() (*ledger.Lease, error) {
			return s.Renew(ctx, "app", "a", 1, ttl, at(6*time.Second))
		}, want{"a", 1, at(16 * time.Second), ""}},
		{"a campaigns again and keeps its term", func() (*ledger.Lease, error) {
			return s.Campaign(ctx, "app", "a", "127.0.0.1:1", ttl, at(7*time.Second))
		}, want{"a", 1, at(17 * time.Second), ""}},
		{"b is refused just before a's lease ends", func() (*ledger.Lease, error) {
			return s.Campaign(ctx, "app", "b", "127.0.0.1:2", ttl, at(17*time.Second-time.Microsecond))
		}, want{"a", 1, at(17 * time.Second), ferry.ECONFLICT}},
		{"b takes the expired lease in the next term", func() (*ledger.Lease, error) {
			return s.Campaign(ctx, "app", "b", "127.0.0.1:2", ttl, at(17*time.Second))
		}, want{"b", 2, at(27 * time.Second), ""}},
		{"a's renewal of term 1 is lost", func() (*ledger.Lease, error) {
			return s.Renew(ctx, "app", "a", 1, ttl, at(18*time.Second))
		}, want{"", 0, time.Time{}, ferry.ECONFLICT}},
		{"b renews term 2", func() (*ledger.Lease, error) {
			return s.Renew(ctx, "app", "b", 2, ttl, at(20*time.Second))
		}, want{"b", 2, at(30 * time.Second), ""}},
		{"b resigns", func() (*ledger.Lease, error) {
			return nil, s.Resign(ctx, "app", "b", 2, at(21*time.Second))
		}, want{"", 0, time.Time{}, ""}},
		{"a's stale resignation changes nothing", func() (*ledger.Lease, error) {
			return nil, s.Resign(ctx, "app", "a", 1, at(21*time.Second))
		}, want{"", 0, time.Time{}, ""}},
		{"c takes over at once in term 3", func() (*ledger.Lease, error) {
			return s.Campaign(ctx, "app", "c", "", ttl, at(21*time.Second))
		}, want{"c", 3, at(31 * time.Second), ""}},
	}
	for _, st := range steps {
		l, err := st.call()
		if st.want.code == "" && err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if st.want.code != "" {
			wantCode(t, st.name, err, st.want.code)
		}
		if st.want.holder == "" {
			continue
		}
		if l == nil {
			t.Fatalf("%s: no lease returned", st.name)
		}
		if l.Holder != st.want.holder || l.Term != st.want.term || !l.ExpiresAt.Equal(st.want.until) {
			t.Errorf("%s: lease = %s term %d until %s, want %s term %d until %s", st.name, l.Holder, l.Term, l.ExpiresAt, st.want.holder, st.want.term, st.want.until)
		}
	}
	l, err := s.Leader(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Leader(app)", l, &ledger.Lease{App: "app", Holder: "c", Term: 3, AcquiredAt: utc(at(21 * time.Second)),
		RenewedAt: utc(at(21 * time.Second)), ExpiresAt: utc(at(31 * time.Second))})
	_, err = s.Campaign(ctx, "app", "d", "", ttl, at(22*time.Second))
	wantError(t, "Campaign(while c leads)", err, ferry.ECONFLICT, "app is led by c (term 3, lease until 2025-03-14 14:09:57.535 UTC)")

	// A server that proved c dead takes over c's live lease at once, in the
	// next term; a second takeover from the same lease is refused.
	tk, err := s.TakeOver(ctx, "app", "c2", "127.0.0.1:3", l, ttl, at(23*time.Second))
	if err != nil || tk.Holder != "c2" || tk.Term != 4 || !tk.ExpiresAt.Equal(at(33*time.Second)) || tk.Address != "127.0.0.1:3" {
		t.Errorf("TakeOver(from c, term 3) = %+v, %v; want c2 in term 4 until +33s", tk, err)
	}
	_, err = s.TakeOver(ctx, "app", "c3", "", l, ttl, at(24*time.Second))
	wantError(t, "TakeOver(from a lease that moved on)", err, ferry.ECONFLICT, "the lease of app is no longer c's in term 3")

	// Another app's lease is its own.
	if o, err := s.Campaign(ctx, "other", "d", "", ttl, at(22*time.Second)); err != nil || o.Term != 1 {
		t.Errorf("Campaign(other app) = %+v, %v; want term 1", o, err)
	}

	for _, tt := range []struct {
		name string
		err  error
	}{
		{"no holder", func() error { _, err := s.Campaign(ctx, "app", "", "", ttl, t0); return err }()},
		{"no app", func() error { _, err := s.Campaign(ctx, "", "a", "", ttl, t0); return err }()},
		{"NUL holder", func() error { _, err := s.Campaign(ctx, "app", "a\x00", "", ttl, t0); return err }()},
		{"ttl too short", func() error { _, err := s.Campaign(ctx, "app", "a", "", time.Millisecond, t0); return err }()},
		{"renew ttl too long", func() error { _, err := s.Renew(ctx, "app", "c", 3, 2*time.Hour, t0); return err }()},
		{"resign bad utf-8", s.Resign(ctx, "app", "\xff", 3, t0)},
	} {
		wantCode(t, tt.name, tt.err, ferry.EINVALID)
	}
}

// testFence shows a deposed leader's writes refused, every kind of them,
// while its successor's and unfenced writes land.
func testFence(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	const ttl = time.Second
	if _, err := s.Campaign(ctx, "app", "a", "", ttl, at(0)); err != nil {
		t.Fatal(err)
	}
	fa := mustFence(t, s, "app", 1)

	// While a leads, its writes land.
	b := mustCreate(t, fa, newBuild("app", 1))
	if err := fa.TransitionBuild(ctx, b.ID, ferry.BuildQueued, ferry.BuildRunning, "", at(time.Millisecond)); err != nil {
		t.Fatalf("a's write in its term: %v", err)
	}

	if _, err := s.Campaign(ctx, "app", "b", "", ttl, at(ttl)); err != nil {
		t.Fatal(err)
	}
	fb := mustFence(t, s, "app", 2)

	d := newDeployment("app", "dev", 1)
	writes := []struct {
		name string
		fn   func(ledger.Store) error
	}{
		{"CreateBuild", func(s ledger.Store) error { return s.CreateBuild(ctx, newBuild("app", 2)) }},
		{"UpdateBuild", func(s ledger.Store) error {
			return s.UpdateBuild(ctx, &ferry.Build{ID: b.ID, State: ferry.BuildFailed})
		}},
		{"TransitionBuild", func(s ledger.Store) error {
			return s.TransitionBuild(ctx, b.ID, ferry.BuildRunning, ferry.BuildFailed, "stale", at(2*ttl))
		}},
		{"SaveStep", func(s ledger.Store) error {
			return s.SaveStep(ctx, ferry.Step{BuildID: b.ID, Seq: 1, Name: "test", State: ferry.StepRunning})
		}},
		{"AppendLog", func(s ledger.Store) error {
			return s.AppendLog(ctx, b.ID, []ferry.LogLine{{Time: at(2 * ttl), Step: "test", Text: "stale"}})
		}},
		{"CreateDeployment", func(s ledger.Store) error { c := *d; return s.CreateDeployment(ctx, &c) }},
		{"AddEvent", func(s ledger.Store) error {
			return s.AddEvent(ctx, &ferry.Event{Time: at(2 * ttl), Kind: "stale.write"})
		}},
		{"Lock", func(s ledger.Store) error {
			return s.Lock(ctx, &ferry.Lock{App: "app", Env: "prod", Reason: "stale", Actor: "a", CreatedAt: at(2 * ttl)})
		}},
		{"AddQuarantine", func(s ledger.Store) error {
			return s.AddQuarantine(ctx, &ferry.Quarantine{App: "app", Commit: commit(9), Reason: "stale", Actor: "a", CreatedAt: at(2 * ttl)})
		}},
		{"AddDelivery", func(s ledger.Store) error { _, err := s.AddDelivery(ctx, "github", "stale-1", at(2*ttl)); return err }},
		{"CreateAction", func(s ledger.Store) error {
			return s.CreateAction(ctx, &ferry.Action{App: "app", Env: "prod", Kind: ferry.ActionLock, Actor: "a", Reason: "stale", CreatedAt: at(2 * ttl)})
		}},
		{"CreateToken", func(s ledger.Store) error {
			return s.CreateToken(ctx, &ferry.Token{Name: "stale", Role: ferry.RoleViewer, Hash: fmt.Sprintf("%064x", 7), CreatedAt: at(2 * ttl), CreatedBy: "a"})
		}},
	}
	for _, w := range writes {
		err := w.fn(fa)
		if !ledger.IsFenced(err) {
			t.Errorf("%s by the deposed leader = %v, want refused by the fence", w.name, err)
		}
		wantCode(t, w.name+" by the deposed leader", err, ferry.ECONFLICT)
	}
	// Nothing of a's landed.
	got, err := s.Build(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ferry.BuildRunning || len(got.Steps) != 0 {
		t.Errorf("build after the refused writes = %s with %d steps, want running with none", got.State, len(got.Steps))
	}
	if bs, _ := s.Builds(ctx, ledger.BuildFilter{App: "app"}); len(bs) != 1 {
		t.Errorf("builds after the refused writes = %d, want 1", len(bs))
	}
	if es, _ := s.Events(ctx, ledger.EventFilter{Kind: "stale."}); len(es) != 0 {
		t.Errorf("events after the refused writes = %d, want 0", len(es))
	}
	if _, err := s.LockOf(ctx, "app", "prod"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("LockOf(prod) after the refused lock = %v, want not locked", err)
	}
	// Reads through the deposed store still work.
	if _, err := fa.Build(ctx, b.ID); err != nil {
		t.Errorf("a read by the deposed leader = %v", err)
	}
	// The new leader's writes, and unfenced ones, land.
	for _, w := range writes {
		if w.name == "CreateBuild" || w.name == "CreateToken" || w.name == "AddDelivery" {
			if err := w.fn(fb); err != nil {
				t.Errorf("%s by the leader = %v", w.name, err)
			}
		}
	}
	if err := s.AddEvent(ctx, &ferry.Event{Time: at(2 * ttl), Kind: "unfenced.write"}); err != nil {
		t.Errorf("an unfenced write = %v", err)
	}
	if err := fb.TransitionBuild(ctx, b.ID, ferry.BuildRunning, ferry.BuildFailed, "the old leader is gone", at(2*ttl)); err != nil {
		t.Errorf("the new leader closing a's build = %v", err)
	}
}

// testFenceRace races a leader's writes against a takeover: every write
// acknowledged is stored, and none that starts after the takeover was
// acknowledged lands.
func testFenceRace(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	const ttl = time.Second
	if _, err := s.Campaign(ctx, "app", "a", "", ttl, at(0)); err != nil {
		t.Fatal(err)
	}
	fa := mustFence(t, s, "app", 1)

	var (
		taken     atomic.Bool
		wg        sync.WaitGroup
		acked     sync.Map // event kind → true
		lateAcked atomic.Int64
		refused   atomic.Int64
	)
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				after := taken.Load()
				kind := fmt.Sprintf("race.w%d.%d", w, i)
				err := fa.AddEvent(ctx, &ferry.Event{Time: at(time.Duration(i) * time.Microsecond), Kind: kind})
				switch {
				case err == nil && after:
					lateAcked.Add(1)
				case err == nil:
					acked.Store(kind, true)
				case ledger.IsFenced(err):
					refused.Add(1)
				default:
					t.Errorf("write %s: %v", kind, err)
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := campaignUntil(ctx, s, "b", at(ttl)); err != nil {
		t.Fatal(err)
	}
	taken.Store(true)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()

	if n := lateAcked.Load(); n != 0 {
		t.Errorf("%d writes of the deposed leader started after the takeover and landed, want 0", n)
	}
	if refused.Load() == 0 {
		t.Errorf("no write of the deposed leader was refused: the race did not happen")
	}
	stored := map[string]bool{}
	for before := int64(0); ; {
		es, err := s.Events(ctx, ledger.EventFilter{Kind: "race.", BeforeID: before, Limit: ledger.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			stored[e.Kind] = true
		}
		if len(es) < ledger.MaxLimit {
			break
		}
		before = es[len(es)-1].ID
	}
	n := 0
	acked.Range(func(k, _ any) bool {
		n++
		if !stored[k.(string)] {
			t.Errorf("acknowledged write %s is not stored", k)
		}
		return true
	})
	if len(stored) != n {
		t.Errorf("%d race events stored, %d acknowledged: a refused write landed", len(stored), n)
	}
	t.Logf("%d writes acknowledged before the takeover, %d refused after it", n, refused.Load())
}

// campaignUntil campaigns for holder until the lease is its own; a busy
// lease (writes under way) is tried again.
func campaignUntil(ctx context.Context, s ledger.Store, holder string, now time.Time) (*ledger.Lease, error) {
	for {
		l, err := s.Campaign(ctx, "app", holder, "", time.Second, now)
		if ferry.ErrorCode(err) != ferry.EUNAVAILABLE {
			return l, err
		}
	}
}

// mustFence opens a fenced store, closed when t ends.
func mustFence(t *testing.T, s ledger.Store, app string, term int64) ledger.Store {
	t.Helper()
	f, err := s.Fence(t.Context(), app, term)
	if err != nil {
		t.Fatalf("Fence(%s, %d) = %v", app, term, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// MustLead makes holder "bench" the leader of app on s and returns the
// store fenced by its term (the caller closes it).
func MustLead(tb testing.TB, s ledger.Store, app string) ledger.Store {
	tb.Helper()
	l, err := s.Campaign(tb.Context(), app, "bench", "", time.Hour, time.Now())
	if err != nil {
		tb.Fatalf("Campaign = %v", err)
	}
	f, err := s.Fence(tb.Context(), app, l.Term)
	if err != nil {
		tb.Fatalf("Fence = %v", err)
	}
	return f
}
