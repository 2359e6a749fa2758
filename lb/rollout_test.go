package lb_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lb"
)

// TestRollingSwitchUnderLoadLosesNothing replaces every replica several times
// while 8 keep-alive clients send GETs and POSTs, the way the local runtime
// rolls out a new version: start new, wait ready, remove old (drain), stop old
// gracefully. Not one request may fail.
func TestRollingSwitchUnderLoadLosesNothing(t *testing.T) {
	const rounds = 10
	b := startBalancer(t, lb.Config{CheckInterval: 50 * time.Millisecond})
	slowish := func(r *replica) { r.delay = time.Millisecond } // keeps requests in flight at removal
	old := []*replica{startReplica(t, "g0-a", slowish), startReplica(t, "g0-b", slowish)}
	addReady(t, b, old...)

	l := startLoad("http://"+b.Addr(), 8, 1_000_000, 60*time.Second, 4)
	defer l.Stop()
	waitFor(t, "load running", func() bool { return l.OK() > 50 })

	began := time.Now()
	var switched time.Time
	for g := 1; g <= rounds; g++ {
		next := []*replica{startReplica(t, fmt.Sprintf("g%d-a", g), slowish), startReplica(t, fmt.Sprintf("g%d-b", g), slowish)}
		for _, r := range next {
			b.Add(r.id, r.addr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, r := range next {
			if err := b.WaitReady(ctx, r.id); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		var wg sync.WaitGroup
		for _, r := range old {
			wg.Go(func() {
				if err := b.Remove(context.Background(), r.id); err != nil {
					t.Errorf("Remove(%s) = %v", r.id, err)
				}
				if d := r.shutdown(t); d > time.Second {
					t.Errorf("shutdown of drained %s took %v, want prompt", r.id, d)
				}
				if r.hits.Load() == 0 {
					t.Errorf("replica %s served nothing; the test did not exercise it", r.id)
				}
			})
		}
		wg.Wait()
		switched = time.Now()
		old = next
		waitFor(t, "load on the new replicas", func() bool {
			return len(l.Served(switched)) > 0 && l.OK() > int64(g*500)
		})
	}
	time.Sleep(100 * time.Millisecond)
	l.Stop()

	if n := l.Failed(); n != 0 {
		t.Errorf("%d of %d requests failed across %d rollouts, want 0; first: %v", n, n+l.OK(), rounds, l.Errors())
	}
	final := l.Served(switched)
	want := []string{old[0].id, old[1].id}
	for id := range final {
		if !slices.Contains(want, id) {
			t.Errorf("after the last switch %d responses came from %q, want only %v", final[id], id, want)
		}
	}
	for _, id := range want {
		if final[id] == 0 {
			t.Errorf("after the last switch no response came from %s (served: %v)", id, final)
		}
	}
	t.Logf("%d requests in %v (%.0f/s), %d failed, %d rollouts",
		l.OK(), time.Since(began).Round(time.Millisecond), float64(l.OK())/time.Since(began).Seconds(), l.Failed(), rounds)
}

// TestCrashedReplicaUnderLoad closes one replica's listener and connections
// abruptly while GETs are in flight on it: they are retried on the others.
func TestCrashedReplicaUnderLoad(t *testing.T) {
	b := startBalancer(t, lb.Config{CheckInterval: 50 * time.Millisecond})
	a := startReplica(t, "a")
	victim := startReplica(t, "b", func(r *replica) { r.delay = 20 * time.Millisecond })
	c := startReplica(t, "c")
	addReady(t, b, a, victim, c)

	l := startLoad("http://"+b.Addr(), 8, 1_000_000, 30*time.Second, 0)
	defer l.Stop()
	waitFor(t, "requests in flight on the victim", func() bool { return victim.active.Load() > 0 })
	victim.crash()
	crashed := time.Now()
	waitFor(t, "load after the crash", func() bool { return l.OK() > 500 && len(l.Served(crashed)) > 0 })
	time.Sleep(200 * time.Millisecond)
	l.Stop()

	if n := l.Failed(); n != 0 {
		t.Errorf("%d GETs failed after a replica crashed, want 0; first: %v", n, l.Errors())
	}
	st, _ := status(b, "b")
	if st.Ready || st.LastError == "" {
		t.Errorf("status(crashed) = %+v, want not ready with its error", st)
	}
	// Requests that started well after the crash never reach it.
	if n := l.Served(crashed.Add(50 * time.Millisecond))["b"]; n != 0 {
		t.Errorf("crashed replica served %d requests after its crash", n)
	}
	if got := b.ReadyCount(); got != 2 {
		t.Errorf("ReadyCount() = %d, want 2", got)
	}
}
