package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// driftCheck runs the periodic drift check once from its start to its end:
// the tick channel is unbuffered, so the second tick is taken only once
// the check of the first is over.
func (f *relFixture) driftCheck() {
	f.t.Helper()
	for range 2 {
		select {
		case f.driftTicks <- f.clk.Now():
		case <-time.After(10 * time.Second):
			f.t.Fatal("the drift check took no tick")
		}
	}
}

// driftEvents are the drift.found and drift.resolved events, oldest first.
func (f *relFixture) driftEvents() (found, resolved []ferry.Event) {
	f.t.Helper()
	es, err := f.ledger.Events(context.Background(), ledger.EventFilter{App: "app", Kind: "drift.", Limit: ledger.MaxLimit})
	if err != nil {
		f.t.Fatal(err)
	}
	for i := len(es) - 1; i >= 0; i-- {
		switch es[i].Kind {
		case EventDriftFound:
			found = append(found, es[i])
		case EventDriftResolved:
			resolved = append(resolved, es[i])
		default:
			f.t.Errorf("unexpected drift event %s: %s", es[i].Kind, es[i].Message)
		}
	}
	return found, resolved
}

// TestDriftWatch: dev drifts behind ferry's back; the periodic check
// records exactly one drift.found naming it (not again at later ticks,
// nor after a restart), one drift.resolved once it is fixed, and nothing
// for a rollout in progress.
func TestDriftWatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		drift    func(f *relFixture, a, b *ferry.Build)
		fix      func(f *relFixture, a, b *ferry.Build)
		want     []string // in the drift.found message
		resolved string   // in the drift.resolved message
	}{
		{
			name: "registry tag moved",
			drift: func(f *relFixture, a, b *ferry.Build) {
				if err := f.tags.Tag(context.Background(), b.Digest, "latest"); err != nil {
					f.t.Fatal(err)
				}
			},
			fix: func(f *relFixture, a, b *ferry.Build) {
				if err := f.tags.Tag(context.Background(), a.Digest, "latest"); err != nil {
					f.t.Fatal(err)
				}
			},
			want:     []string{"drift in dev: registry tag latest: want ", ", got ", "; fix: ferry scale dev 2"},
			resolved: "drift resolved in dev: registry tag latest: want ",
		},
		{
			name: "a replica lost",
			drift: func(f *relFixture, a, b *ferry.Build) {
				f.dev.mu.Lock()
				f.dev.running.Replicas = 1
				f.dev.mu.Unlock()
			},
			fix: func(f *relFixture, a, b *ferry.Build) {
				f.dev.mu.Lock()
				f.dev.running.Replicas = 2
				f.dev.mu.Unlock()
			},
			want:     []string{"drift in dev: replicas ready: want 2, got 1; fix: ferry logs dev"},
			resolved: "drift resolved in dev: replicas ready: want 2, got it (was 1)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRelFixture(t, 0)
			a := f.commit("master", "a")
			f.inDev(a)
			waitUntil(t, func() bool { return f.tags.get("latest") == a.Digest }, "latest")
			waitUntil(t, func() bool { return f.originRef("refs/tags/env/dev") == a.Commit }, "env/dev")
			b := f.commit("feature", "b") // not master's: dev does not converge on it
			f.driftCheck()
			if found, resolved := f.driftEvents(); len(found)+len(resolved) != 0 {
				t.Fatalf("drift events of a clean dev = %+v %+v, want none", found, resolved)
			}

			tc.drift(f, a, b)
			f.driftCheck()
			f.driftCheck()
			found, resolved := f.driftEvents()
			if len(found) != 1 || len(resolved) != 0 {
				t.Fatalf("after the drift and two checks: found %+v, resolved %+v; want one found", found, resolved)
			}
			if found[0].Env != "dev" || found[0].Actor != "ferry" {
				t.Errorf("drift.found env %q actor %q, want dev, ferry", found[0].Env, found[0].Actor)
			}
			for _, w := range tc.want {
				if !strings.Contains(found[0].Message, w) {
					t.Errorf("drift.found message %q lacks %q", found[0].Message, w)
				}
			}

			// A restart restores dev (which mends this drift) before the
			// check starts; the drift is back then, and the new run knows
			// it reported it already.
			f.restart()
			var last []Drift
			var lastErr error
			deadline := time.Now().Add(10 * time.Second)
			for {
				last, lastErr = f.ctrl.Check(context.Background())
				if lastErr == nil && len(last) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("dev not restored: drifts %+v, %v", last, lastErr)
				}
				time.Sleep(5 * time.Millisecond)
			}
			tc.drift(f, a, b)
			f.driftCheck()
			if found, resolved := f.driftEvents(); len(found) != 1 || len(resolved) != 0 {
				t.Fatalf("after a restart: found %d, resolved %d; want 1, 0", len(found), len(resolved))
			}

			tc.fix(f, a, b)
			f.driftCheck()
			f.driftCheck()
			found, resolved = f.driftEvents()
			if len(found) != 1 || len(resolved) != 1 {
				t.Fatalf("after the fix: found %d, resolved %+v; want 1, 1", len(found), resolved)
			}
			if resolved[0].Env != "dev" || !strings.Contains(resolved[0].Message, tc.resolved) {
				t.Errorf("drift.resolved = %s %q, want dev and %q", resolved[0].Env, resolved[0].Message, tc.resolved)
			}

			// A rollout in progress is no drift: dev's scale is held in
			// its Scale while the check runs.
			f.dev.mu.Lock()
			f.dev.gate = make(chan struct{})
			f.dev.mu.Unlock()
			for len(f.dev.entered) > 0 {
				<-f.dev.entered
			}
			sc, err := f.ctrl.Scale(context.Background(), "dev", 3, "ada", "")
			if err != nil {
				t.Fatal(err)
			}
			<-f.dev.entered
			f.driftCheck()
			f.dev.mu.Lock()
			close(f.dev.gate)
			f.dev.gate = nil
			f.dev.mu.Unlock()
			if d := f.wait(sc.ID); d.State != ferry.DeploymentSucceeded {
				t.Fatalf("scale = %s (%s)", d.State, d.Error)
			}
			waitUntil(t, func() bool {
				drifts, err := f.ctrl.Check(context.Background())
				return err == nil && len(drifts) == 0
			}, "dev settled after its scale")
			f.driftCheck()
			if found, resolved := f.driftEvents(); len(found) != 1 || len(resolved) != 1 {
				t.Fatalf("after a rollout: found %+v, resolved %+v; want 1, 1", found, resolved)
			}
		})
	}
}

// TestParseDriftEvent: the events' messages give back the drift they
// were recorded for, which is what a restart reads.
func TestParseDriftEvent(t *testing.T) {
	d := Drift{Env: "prod", What: "git tag RC20990101_0003", Want: "no such tag: the ledger has no release RC20990101_0003", Got: "bbbb", Fix: "on the git server: git tag -d RC20990101_0003"}
	want := reported{env: "prod", key: driftKey(d), got: "bbbb"}
	for _, tc := range []struct {
		name string
		e    ferry.Event
		want reported
		ok   bool
	}{
		{"found", ferry.Event{Kind: EventDriftFound, Env: "prod", Message: foundMessage(d)}, want, true},
		{"resolved", ferry.Event{Kind: EventDriftResolved, Env: "prod", Message: resolvedMessage(want)}, want, true},
		{"another kind", ferry.Event{Kind: "deployment.failed", Env: "prod", Message: foundMessage(d)}, reported{}, false},
		{"another env", ferry.Event{Kind: EventDriftFound, Env: "dev", Message: foundMessage(d)}, reported{}, false},
		{"no got", ferry.Event{Kind: EventDriftFound, Env: "prod", Message: "drift in prod: something"}, reported{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseDriftEvent(tc.e)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseDriftEvent(%q) = %+v, %v; want %+v, %v", tc.e.Message, got, ok, tc.want, tc.ok)
			}
		})
	}
}
