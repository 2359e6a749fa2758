package local

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

func TestApplyServesAndIsIdempotent(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	var steps []ferry.Progress
	s := spec(im.v1, 2)
	if err := tg.Apply(t.Context(), s, func(p ferry.Progress) { steps = append(steps, p) }); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, tg, "/version"); code != 200 || body != "v1" {
		t.Errorf("GET /version = %d %q, want 200 v1", code, body)
	}
	st := status(t, tg)
	if st.Digest != im.v1 || st.Commit != s.Commit || st.Ready != 2 || st.Desired != 2 || len(st.Replicas) != 2 {
		t.Errorf("Status = %+v, want digest %s, 2/2 ready", st, im.v1)
	}
	for _, r := range st.Replicas {
		if r.State != ferry.ReplicaRunning || !r.Ready || r.Addr == "" || r.Digest != im.v1 || r.Started.IsZero() {
			t.Errorf("replica %+v, want running, ready, with address and start time", r)
		}
	}
	if len(steps) == 0 || steps[len(steps)-1].Ready != 2 || steps[len(steps)-1].Updated != 2 {
		t.Errorf("last progress = %+v, want 2 ready, 2 updated", steps)
	}

	// The same spec again changes nothing.
	before := pids(tg)
	start := time.Now()
	apply(t, tg, s)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("idempotent Apply took %v", d)
	}
	if after := pids(tg); !slices.Equal(before, after) {
		t.Errorf("idempotent Apply: pids %v, want %v", after, before)
	}
}

func TestRollingUpdateUnderLoad(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	apply(t, tg, spec(im.v1, 2))
	l := startLoad(tg, 4)
	time.Sleep(200 * time.Millisecond)
	apply(t, tg, spec(im.v2, 2))
	time.Sleep(200 * time.Millisecond)
	versions := l.stop(t)
	if versions["v1"] == 0 || versions["v2"] == 0 {
		t.Errorf("versions served = %v, want both v1 and v2", versions)
	}
	st := status(t, tg)
	if st.Digest != im.v2 || st.Ready != 2 || len(st.Replicas) != 2 {
		t.Errorf("Status = %+v, want 2 ready replicas, all on v2", st)
	}
	for range 10 {
		if _, body := get(t, tg, "/version"); body != "v2" {
			t.Fatalf("GET /version = %q after the rollout, want v2", body)
		}
	}
}

func TestRolloutWithLargerSurge(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	apply(t, tg, spec(im.v1, 4))
	s := spec(im.v2, 4)
	s.Rollout.MaxSurge = 2
	most := 0
	err := tg.Apply(t.Context(), s, func(ferry.Progress) {
		tg.mu.Lock()
		most = max(most, len(tg.replicas))
		tg.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if most != 6 {
		t.Errorf("at most %d replicas during the rollout, want 4+2", most)
	}
	if st := status(t, tg); st.Digest != im.v2 || st.Ready != 4 {
		t.Errorf("Status = %+v, want 4 ready on v2", st)
	}
}

func TestCrashingDigestKeepsOldServing(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	prev := spec(im.v1, 2)
	apply(t, tg, prev)
	l := startLoad(tg, 4)
	start := time.Now()
	err := tg.Apply(t.Context(), spec(im.crash, 2), nil)
	took := time.Since(start)
	l.stop(t)
	re, ok := errors.AsType[*ReplicaError](err)
	if !ok {
		t.Fatalf("Apply(crash) = %v, want a *ReplicaError", err)
	}
	if !strings.Contains(re.Reason, "crash-looping") || !slices.ContainsFunc(re.Log, func(l string) bool { return strings.Contains(l, "crashing at start") }) {
		t.Errorf("Apply(crash) = %v, want crash-looping with the app's output", err)
	}
	if re.Digest != im.crash || !strings.HasPrefix(re.ID, "dev-") {
		t.Errorf("ReplicaError = %+v, want the crash digest and a dev replica", re)
	}
	if took > 10*time.Second {
		t.Errorf("Apply(crash) took %v; a crash loop should fail fast", took)
	}
	t.Logf("Apply(crash) failed after %v: %v", took, err)
	st := status(t, tg)
	if st.Digest != im.v1 || st.Ready != 2 || len(st.Replicas) != 2 {
		t.Errorf("Status after the failed rollout = %+v, want the 2 v1 replicas only", st)
	}
	apply(t, tg, prev)
	if st := status(t, tg); st.Digest != im.v1 || st.Ready != 2 {
		t.Errorf("Status after re-applying v1 = %+v", st)
	}
}

func TestNeverReadyDigestTimesOut(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	apply(t, tg, spec(im.v1, 1))
	l := startLoad(tg, 2)
	s := spec(im.never, 1)
	s.Rollout.ReadyTimeout = 2 * time.Second
	start := time.Now()
	err := tg.Apply(t.Context(), s, nil)
	took := time.Since(start)
	l.stop(t)
	re, ok := errors.AsType[*ReplicaError](err)
	if !ok || !strings.Contains(re.Reason, "not ready within 2s") || !strings.Contains(re.Reason, "503") {
		t.Fatalf("Apply(never) = %v, want not ready within 2s with the readiness answer", err)
	}
	if took < 2*time.Second || took > 8*time.Second {
		t.Errorf("Apply(never) took %v, want about the 2s ready timeout", took)
	}
	if st := status(t, tg); st.Digest != im.v1 || len(st.Replicas) != 1 || st.Ready != 1 {
		t.Errorf("Status after the failed rollout = %+v, want the v1 replica only", st)
	}
}

func TestCanceledRolloutThenRevertConverges(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	prev := spec(im.v1, 2)
	apply(t, tg, prev)
	l := startLoad(tg, 4)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel as soon as the first old replica was replaced: the rollout
	// stops half way.
	err := tg.Apply(ctx, spec(im.v2, 2), func(p ferry.Progress) {
		if strings.Contains(p.Message, "(replaced)") {
			cancel()
		}
	})
	re, ok := errors.AsType[*ReplicaError](err)
	if !ok || !strings.Contains(re.Reason, "rollout canceled") {
		t.Fatalf("canceled Apply = %v, want a rollout canceled *ReplicaError", err)
	}
	st := status(t, tg)
	if st.Digest != "" || st.Ready != 2 {
		t.Errorf("Status after the canceled rollout = %+v, want a mix of v1 and v2, 2 ready", st)
	}
	apply(t, tg, prev)
	l.stop(t)
	if st := status(t, tg); st.Digest != im.v1 || st.Ready != 2 || len(st.Replicas) != 2 {
		t.Errorf("Status after re-applying v1 = %+v, want 2 ready on v1", st)
	}
}

func TestScaleUnderLoad(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	if err := tg.Scale(t.Context(), 2); err == nil {
		t.Errorf("Scale before any Apply = nil, want an error")
	}
	apply(t, tg, spec(im.v1, 1))
	l := startLoad(tg, 4)
	for _, n := range []int{3, 1, 2} {
		if err := tg.Scale(t.Context(), n); err != nil {
			t.Fatalf("Scale(%d): %v", n, err)
		}
		st := status(t, tg)
		if st.Ready != n || st.Desired != n || len(st.Replicas) != n || st.Digest != im.v1 {
			t.Errorf("after Scale(%d): Status = %+v", n, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.stop(t)
	if err := tg.Scale(t.Context(), -1); err == nil {
		t.Errorf("Scale(-1) = nil, want an error")
	}
}

func TestKilledReplicaRestarts(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	apply(t, tg, spec(im.v1, 2))
	l := startLoad(tg, 4)
	time.Sleep(100 * time.Millisecond)
	victim := pids(tg)[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the killed replica to be back", func() bool {
		st := status(t, tg)
		restarts := 0
		for _, r := range st.Replicas {
			restarts += r.Restarts
		}
		return st.Ready == 2 && restarts == 1 && !slices.Contains(pids(tg), victim)
	})
	time.Sleep(200 * time.Millisecond)
	l.stop(t)
	st := status(t, tg)
	for _, r := range st.Replicas {
		if r.State != ferry.ReplicaRunning {
			t.Errorf("replica %s is %s, want running", r.ID, r.State)
		}
	}
}

func TestCloseStopsEveryProcess(t *testing.T) {
	im := appImages(t)
	events := &syncBuffer{}
	tg := newTarget(t, im, logTo(t, events))
	s := spec(im.stubborn, 2)
	s.Rollout.Grace = 500 * time.Millisecond
	apply(t, tg, s)
	ps := pids(tg)
	if len(ps) != 2 {
		t.Fatalf("pids = %v, want 2", ps)
	}
	start := time.Now()
	if err := tg.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	for _, pid := range ps {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("replica pid %d still exists after Close (kill 0: %v)", pid, err)
		}
	}
	// The app ignores SIGTERM: Close had to wait for the grace period,
	// then kill.
	if took < 500*time.Millisecond || took > 5*time.Second {
		t.Errorf("Close took %v, want the 500ms grace period and a bit", took)
	}
	if !strings.Contains(events.String(), "after SIGTERM: SIGKILL\" env=dev replica=dev-1") {
		t.Errorf("the runtime's log does not note dev-1's SIGKILL:\n%s", events)
	}
	if err := tg.Apply(t.Context(), spec(im.v1, 1), nil); err == nil {
		t.Errorf("Apply after Close = nil, want an error")
	}
}

func TestArgsCarryThePort(t *testing.T) {
	im := appImages(t)
	var mu sync.Mutex
	var calls []int
	tg := newTarget(t, im, func(c *Config) {
		c.PortEnv = ""
		c.Args = func(replica int, host string, port int) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, replica)
			return []string{"-addr", addr(port)}, nil
		}
	})
	apply(t, tg, spec(im.v1, 2))
	if code, body := get(t, tg, "/version"); code != 200 || body != "v1" {
		t.Errorf("GET /version = %d %q, want 200 v1", code, body)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(calls)
	if !slices.Equal(calls, []int{0, 1}) {
		t.Errorf("Args called for replicas %v, want [0 1]", calls)
	}
}

func TestNextBackoff(t *testing.T) {
	for _, tc := range []struct {
		prev, ran, want time.Duration
	}{
		{0, 0, 100 * time.Millisecond},
		{100 * time.Millisecond, time.Millisecond, 200 * time.Millisecond},
		{6400 * time.Millisecond, time.Second, 10 * time.Second},
		{10 * time.Second, time.Second, 10 * time.Second},
		{10 * time.Second, 29 * time.Second, 10 * time.Second},
		{10 * time.Second, 30 * time.Second, 100 * time.Millisecond},
	} {
		if got := nextBackoff(tc.prev, tc.ran); got != tc.want {
			t.Errorf("nextBackoff(%v, %v) = %v, want %v", tc.prev, tc.ran, got, tc.want)
		}
	}
}

func TestRolloutWithoutSurge(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	apply(t, tg, spec(im.v1, 2))
	s := spec(im.v2, 2)
	s.Rollout.MaxUnavailable = 1
	s.Rollout.MaxSurge = 0
	most := 0
	err := tg.Apply(t.Context(), s, func(ferry.Progress) {
		tg.mu.Lock()
		most = max(most, len(tg.replicas))
		tg.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if most > 2 {
		t.Errorf("%d replicas during a rollout without surge, want at most 2", most)
	}
	if st := status(t, tg); st.Digest != im.v2 || st.Ready != 2 {
		t.Errorf("Status = %+v, want 2 ready on v2", st)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	im := appImages(t)
	for _, c := range []Config{
		{Env: "", DataDir: t.TempDir(), Listen: "127.0.0.1:0", Images: im.src},
		{Env: "../x", DataDir: t.TempDir(), Listen: "127.0.0.1:0", Images: im.src},
		{Env: "dev", DataDir: t.TempDir(), Listen: "127.0.0.1:0"},
		{Env: "dev", DataDir: t.TempDir(), Listen: "nonsense", Images: im.src},
	} {
		if tg, err := New(c); err == nil {
			tg.Close(t.Context())
			t.Errorf("New(%+v) = nil error, want one", c)
		}
	}
	tg := newTarget(t, im)
	if err := tg.Apply(t.Context(), spec("sha256:nothex", 1), nil); err == nil {
		t.Errorf("Apply(bad digest) = nil, want an error")
	}
	s := spec(im.v1, 1)
	s.Env = "prod"
	if err := tg.Apply(t.Context(), s, nil); err == nil {
		t.Errorf("Apply(spec for prod) on dev = nil, want an error")
	}
}
