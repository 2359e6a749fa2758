package server

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/builder"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/ledger/ledgerdb"
)

// TestBurstOfPushesSupersedes: while A builds, B and C are pushed and
// triggered; B, queued behind A, is superseded by C and says so, C is
// built, and no commit goes unrecorded.
func TestBurstOfPushesSupersedes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newGate(t)
	repo := newRepo(t, "testdata/tiny")
	a := repo.Head()
	s := start(t, withTest(tinyConfig(repo.Dir, t.TempDir(), ""), g.command()), Options{})
	c := newClient(t, s)

	waitState(t, s, a, ferry.BuildRunning, time.Minute)
	repo.Write("b.txt", "b")
	b := repo.CommitAll("commit B")
	res, err := c.Trigger(ctx, "master", b)
	if err != nil {
		t.Fatalf("trigger B: %v", err)
	}
	if !res.Queued || res.Build.State != ferry.BuildQueued {
		t.Fatalf("trigger B: queued=%v state=%s, want a queued build", res.Queued, res.Build.State)
	}
	repo.Write("c.txt", "c")
	cc := repo.CommitAll("commit C")
	if res, err = c.Trigger(ctx, "master", cc); err != nil || !res.Queued {
		t.Fatalf("trigger C: %+v, %v; want it queued", res, err)
	}
	// Triggering the head again finds C's build, queues nothing.
	if res, err = c.Trigger(ctx, "master", ""); err != nil || res.Queued || res.Build.Commit != cc {
		t.Fatalf("trigger head: %+v, %v; want C's existing build", res, err)
	}
	if got := waitState(t, s, b, ferry.BuildSuperseded, 10*time.Second); !strings.Contains(got.Reason, ferry.ShortSHA(cc)) {
		t.Errorf("B's reason = %q, want it to name C (%s)", got.Reason, ferry.ShortSHA(cc))
	}
	waitState(t, s, a, ferry.BuildRunning, time.Second) // A is still the one running
	g.release(t)

	ba := waitBuild(t, s, a, time.Minute)
	bc := waitBuild(t, s, cc, time.Minute)
	bb := waitBuild(t, s, b, time.Second)
	if ba.State != ferry.BuildSucceeded || bc.State != ferry.BuildSucceeded {
		t.Errorf("A, C = %s (%s), %s (%s); want both succeeded", ba.State, ba.Reason, bc.State, bc.Reason)
	}
	if bb.State != ferry.BuildSuperseded || !bb.StartedAt.IsZero() {
		t.Errorf("B = %s started %v, want superseded and never started", bb.State, bb.StartedAt)
	}
	for _, st := range bb.Steps {
		t.Errorf("superseded build B has step %s (%s), want none run", st.Name, st.State)
	}
	wantEvent(t, s, "build.superseded", bb.ID, ferry.ShortSHA(cc))
	// Every commit is in the ledger, each in a final state.
	var got []string
	for _, x := range builds(t, s) {
		got = append(got, x.Commit+" "+string(x.State))
	}
	want := []string{cc + " succeeded", b + " superseded", a + " succeeded"}
	if !slices.Equal(got, want) {
		t.Errorf("builds = %q, want %q", got, want)
	}
	if bc.StartedAt.Before(ba.FinishedAt) {
		t.Errorf("C started at %s, before A finished at %s: builds must run one at a time", bc.StartedAt, ba.FinishedAt)
	}
}

// TestRestartResumesBuild: ferry stopped during a build leaves it running
// in the ledger; the next start resumes it (build.resumed with a reason),
// and it ends succeeded — never stuck running.
func TestRestartResumesBuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newGate(t)
	repo := newRepo(t, "testdata/tiny")
	commit := repo.Head()
	data := t.TempDir()
	yaml := withTest(tinyConfig(repo.Dir, data, ""), g.command())
	s := start(t, yaml, Options{})
	first := waitState(t, s, commit, ferry.BuildRunning, time.Minute)
	waitFor(t, 30*time.Second, "the test step to wait on the gate", func() bool {
		return hasLine(logLines(t, s, first.ID), builder.StepTest, "gate-waiting")
	})

	// A log follower must not hold the shutdown up.
	c := newClient(t, s)
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	followed := make(chan error, 1)
	connected := make(chan struct{})
	var once sync.Once
	go func() {
		followed <- c.BuildLogs(followCtx, first.ID, true, func(api.LogRecord) error {
			once.Do(func() { close(connected) })
			return nil
		})
	}()
	select {
	case <-connected:
	case err := <-followed:
		t.Fatalf("follow build %d: %v", first.ID, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the log follower got no record within 10s")
	}

	closed := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if d := time.Since(closed); d > 5*time.Second {
		t.Errorf("Close took %s with a build running and a log follower, want it prompt", d.Round(time.Millisecond))
	}
	select {
	case <-followed:
	case <-time.After(5 * time.Second):
		t.Error("the log follower was not let go when the server stopped")
	}

	// The ledger, read directly, still says running.
	cfg, err := config.Parse("ferry.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledgerdb.Open(ctx, cfg.Ledger.URL)
	if err != nil {
		t.Fatal(err)
	}
	stopped, err := l.Build(ctx, first.ID)
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	if stopped.State != ferry.BuildRunning {
		t.Fatalf("after stopping ferry, build state = %s (%s), want running (to be resumed)", stopped.State, stopped.Reason)
	}

	s2 := start(t, yaml, Options{})
	waitFor(t, 10*time.Second, "the build.resumed event", func() bool { return len(events(t, s2, "build.resumed")) > 0 })
	resumed := events(t, s2, "build.resumed")[0]
	if resumed.BuildID != first.ID || !strings.Contains(resumed.Reason, "ferry stopped during the build") {
		t.Errorf("build.resumed event = %+v, want build %d with the reason", resumed, first.ID)
	}
	waitState(t, s2, commit, ferry.BuildRunning, time.Minute)
	g.release(t)
	b := waitBuild(t, s2, commit, time.Minute)
	if b.State != ferry.BuildSucceeded {
		t.Fatalf("resumed build = %s (%s), want succeeded", b.State, b.Reason)
	}
	if b.ID != first.ID {
		t.Errorf("resumed build id = %d, want the interrupted build %d", b.ID, first.ID)
	}
	for _, st := range b.Steps {
		if st.State != ferry.StepSucceeded && !(st.Name == builder.StepIntegration && st.State == ferry.StepSkipped) { // no build.integration here
			t.Errorf("step %s = %s (%s), want succeeded", st.Name, st.State, st.Error)
		}
	}
	// The registry moved (port 0 picks a new one): the build records where
	// this run pushed.
	if b.Image != s2.ImageRepository() {
		t.Errorf("build image = %q, want %q where the resumed run pushed", b.Image, s2.ImageRepository())
	}
	if n := len(builds(t, s2)); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}
}

// TestFollowBuildLogs: a follower of a running build hears its steps and
// lines while it runs, and the stream ends with the final state.
func TestFollowBuildLogs(t *testing.T) {
	t.Parallel()
	g := newGate(t)
	repo := newRepo(t, "testdata/tiny")
	commit := repo.Head()
	s := start(t, withTest(tinyConfig(repo.Dir, t.TempDir(), ""), g.command()), Options{})
	b := waitState(t, s, commit, ferry.BuildRunning, time.Minute)

	c := newClient(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs := make(chan api.LogRecord, 1000)
	done := make(chan error, 1)
	go func() {
		done <- c.BuildLogs(ctx, b.ID, true, func(r api.LogRecord) error { recs <- r; return nil })
		close(recs)
	}()

	var sawTestRunning bool
	// Heartbeats are records too: each phase has one deadline.
	deadline := time.After(30 * time.Second)
	next := func(what string) api.LogRecord {
		t.Helper()
		select {
		case r, ok := <-recs:
			if !ok {
				t.Fatalf("the stream ended (%v) before %s", <-done, what)
			}
			if r.Steps != nil && stepOf(r.Steps, builder.StepTest).State == ferry.StepRunning {
				sawTestRunning = true
			}
			return r
		case <-deadline:
			t.Fatalf("not within 30s: %s", what)
		}
		return api.LogRecord{}
	}
	for {
		r := next("the gate-waiting line")
		if r.Line != nil && r.Line.Step == builder.StepTest && r.Line.Text == "gate-waiting" {
			break
		}
		if r.State != "" {
			t.Fatalf("the stream ended with %s before the gate was released", r.State)
		}
	}
	if !sawTestRunning {
		t.Error("no steps record with the test step running arrived before its line")
	}

	g.release(t)
	deadline = time.After(30 * time.Second)
	var lines []string
	var last api.LogRecord
	for {
		r := next("the final state")
		if r.Line != nil {
			lines = append(lines, r.Line.Step+": "+r.Line.Text)
		}
		if r.State != "" {
			last = r
			break
		}
	}
	if err := <-done; err != nil {
		t.Errorf("BuildLogs: %v", err)
	}
	if _, ok := <-recs; ok {
		t.Error("records after the final state")
	}
	if last.State != ferry.BuildSucceeded || !strings.HasPrefix(last.Digest, "sha256:") {
		t.Errorf("final record = %+v, want succeeded with the digest", last)
	}
	for _, want := range []string{"test: gate-passed", "push: pushed sha256:"} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("lines after the release %q lack %q", lines, want)
		}
	}
}

// newClient is a client of s with a new admin token.
func newClient(t testing.TB, s *Server) *client.Client {
	t.Helper()
	return tokenClient(t, s, tokenFor(t, s, ferry.RoleAdmin))
}

// tokenClient is a client of s that sends the token secret.
func tokenClient(t testing.TB, s *Server, secret string) *client.Client {
	t.Helper()
	c, err := client.New(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c.Token = secret
	return c
}
