// Package ledgertest is the one test suite that every ledger engine passes.
// An engine's test calls Run with a function that makes it a fresh database:
//
//	func TestLedger(t *testing.T) {
//		ledgertest.Run(t, func(t *testing.T) ledgertest.OpenFunc {
//			path := filepath.Join(t.TempDir(), "ledger.db")
//			return func(ctx context.Context) (ledger.Store, error) { return sqlite.Open(ctx, path) }
//		})
//	}
//
// The suite checks behaviour through ledger.Store only: round trips of every
// field, error codes, ordering, filters and paging, compare-and-set
// transitions of builds and deployments and gapless log numbering under
// concurrency, what an environment currently runs, API tokens, keys refused
// and free text capped alike (NUL, invalid UTF-8, lengths), webhook
// deliveries recognised once, actions with their compare-and-set
// transitions and the deployment each starts, release requests with their
// approvals (one per person, compare-and-set), canary states (ended ones
// never changed, deposed leaders' writes fenced), and that data survives
// reopening the database.
package ledgertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// OpenFunc opens a store on one database. The suite may call it several
// times, from several goroutines at once, and closes every store it opens.
type OpenFunc func(ctx context.Context) (ledger.Store, error)

// Run runs the suite. newDB makes a fresh, empty database for t, removed when
// t ends (or fails t), and returns the function that opens stores on it.
func Run(t *testing.T, newDB func(t *testing.T) OpenFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open OpenFunc)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"CreateInvalid", testCreateInvalid},
		{"DuplicateCommit", testDuplicateCommit},
		{"ListBuilds", testListBuilds},
		{"UpdateBuild", testUpdateBuild},
		{"TransitionBuild", testTransitionBuild},
		{"TransitionRace", testTransitionRace},
		{"Steps", testSteps},
		{"Logs", testLogs},
		{"ConcurrentAppends", testConcurrentAppends},
		{"Events", testEvents},
		{"DeploymentCreateAndGet", testDeploymentCreateAndGet},
		{"DeploymentInvalid", testDeploymentInvalid},
		{"ListDeployments", testListDeployments},
		{"UpdateDeployment", testUpdateDeployment},
		{"Current", testCurrent},
		{"TransitionDeployment", testTransitionDeployment},
		{"DeploymentTransitionRace", testDeploymentTransitionRace},
		{"CommitTimes", testCommitTimes},
		{"MergedPages", testMergedPages},
		{"Tokens", testTokens},
		{"Locks", testLocks},
		{"Quarantines", testQuarantines},
		{"OddKeys", testOddKeys},
		{"TextLimits", testTextLimits},
		{"Deliveries", testDeliveries},
		{"Lease", testLease},
		{"Fence", testFence},
		{"FenceRace", testFenceRace},
		{"Actions", testActions},
		{"ActionDeployment", testActionDeployment},
		{"ReleaseRequests", testReleaseRequests},
		{"ApprovalRace", testApprovalRace},
		{"Notifications", testNotifications},
		{"Canaries", testCanaries},
		{"NotFound", testNotFound},
		{"EmptyLists", testEmptyLists},
		{"Reopen", testReopen},
		{"ConcurrentOpen", testConcurrentOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newDB(t)) })
	}
}

// mustOpen opens a store that is closed when t ends.
func mustOpen(t *testing.T, open OpenFunc) ledger.Store {
	t.Helper()
	s, err := open(t.Context())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

// t0 has microsecond precision (PostgreSQL keeps no more) and is not in
// UTC, so round trips prove that times come back in UTC and equal.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.FixedZone("CET", 3600))

func at(d time.Duration) time.Time { return t0.Add(d) }

// commit returns a distinct, valid 40-hex commit id for i.
func commit(i int) string { return fmt.Sprintf("%040x", 0xc0ffee000+i) }

func newBuild(app string, i int) *ferry.Build {
	return &ferry.Build{
		App:       app,
		Commit:    commit(i),
		Branch:    "master",
		Subject:   fmt.Sprintf("change %d", i),
		Author:    "Ada <ada@example.com>",
		Trigger:   "poll",
		State:     ferry.BuildQueued,
		CreatedAt: at(time.Duration(i) * time.Second),
	}
}

func mustCreate(t *testing.T, s ledger.Store, b *ferry.Build) *ferry.Build {
	t.Helper()
	if err := s.CreateBuild(t.Context(), b); err != nil {
		t.Fatalf("CreateBuild(%s) = %v", b.Commit, err)
	}
	return b
}

// utcBuild is b as the ledger gives it back: times in UTC, steps a non-nil
// slice.
func utcBuild(b *ferry.Build) *ferry.Build {
	c := *b
	c.CreatedAt, c.StartedAt, c.FinishedAt = utc(c.CreatedAt), utc(c.StartedAt), utc(c.FinishedAt)
	c.Steps = []ferry.Step{}
	for _, st := range b.Steps {
		c.Steps = append(c.Steps, utcStep(st))
	}
	return &c
}

func utcStep(st ferry.Step) ferry.Step {
	st.StartedAt, st.FinishedAt = utc(st.StartedAt), utc(st.FinishedAt)
	return st
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// same fails t unless got and want encode to the same JSON (which names
// every field, and a time's zone): "what = got, want want".
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("%s: encode: %v", what, err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("%s: encode: %v", what, err)
	}
	if string(g) != string(w) {
		t.Errorf("%s =\n  %s\nwant\n  %s", what, g, w)
	}
}

// wantCode fails t unless err carries the ferry error code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := ferry.ErrorCode(err); got != code {
		t.Errorf("%s = %v (code %q), want code %q", what, err, got, code)
	}
}

func buildIDs(bs []*ferry.Build) []int64 {
	ids := []int64{}
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	return ids
}

func testCreateAndGet(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()

	full := &ferry.Build{
		App:        "birthday-app",
		Commit:     commit(1),
		Branch:     "master",
		Subject:    "Say happy birthday — with ünïcode",
		Author:     "Ada Lovelace <ada@example.com>",
		Trigger:    "webhook:github",
		State:      ferry.BuildSucceeded,
		Reason:     "all green",
		Image:      "127.0.0.1:5000/birthday-app",
		Digest:     "sha256:" + fmt.Sprintf("%064x", 42),
		CreatedAt:  at(0),
		StartedAt:  at(time.Second),
		FinishedAt: at(time.Minute),
	}
	mustCreate(t, s, full)
	if full.ID <= 0 {
		t.Fatalf("CreateBuild set ID = %d, want > 0", full.ID)
	}
	want := utcBuild(full)

	got, err := s.Build(ctx, full.ID)
	if err != nil {
		t.Fatalf("Build(%d) = %v", full.ID, err)
	}
	same(t, fmt.Sprintf("Build(%d)", full.ID), got, want)
	if got.Steps == nil {
		t.Errorf("Build(%d).Steps = nil, want an empty slice", full.ID)
	}
	if loc := got.CreatedAt.Location(); loc != time.UTC {
		t.Errorf("Build(%d).CreatedAt is in %v, want UTC", full.ID, loc)
	}

	got, err = s.BuildByCommit(ctx, full.App, full.Commit)
	if err != nil {
		t.Fatalf("BuildByCommit(%s) = %v", full.Commit, err)
	}
	same(t, "BuildByCommit", got, want)

	// An empty state means queued, and is written back.
	minimal := &ferry.Build{App: "birthday-app", Commit: commit(2), CreatedAt: at(time.Hour)}
	mustCreate(t, s, minimal)
	if minimal.State != ferry.BuildQueued {
		t.Errorf("CreateBuild without state set State = %q, want %q", minimal.State, ferry.BuildQueued)
	}
	if minimal.ID <= full.ID {
		t.Errorf("second build ID = %d, want > %d", minimal.ID, full.ID)
	}
	got, err = s.Build(ctx, minimal.ID)
	if err != nil {
		t.Fatalf("Build(%d) = %v", minimal.ID, err)
	}
	same(t, "minimal build", got, utcBuild(minimal))

	// The same commit of another app is another build.
	other := mustCreate(t, s, &ferry.Build{App: "other-app", Commit: commit(1), CreatedAt: at(0)})
	got, err = s.BuildByCommit(ctx, "other-app", commit(1))
	if err != nil {
		t.Fatalf("BuildByCommit(other-app) = %v", err)
	}
	if got.ID != other.ID {
		t.Errorf("BuildByCommit(other-app).ID = %d, want %d", got.ID, other.ID)
	}
}

func testCreateInvalid(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	tests := []struct {
		name  string
		build ferry.Build
	}{
		{"no app", ferry.Build{Commit: commit(1), CreatedAt: t0}},
		{"short commit", ferry.Build{App: "a", Commit: "abc123", CreatedAt: t0}},
		{"upper-case commit", ferry.Build{App: "a", Commit: "ABCDEF" + commit(1)[6:], CreatedAt: t0}},
		{"no creation time", ferry.Build{App: "a", Commit: commit(1)}},
		{"unknown state", ferry.Build{App: "a", Commit: commit(1), CreatedAt: t0, State: "exploded"}},
	}
	for _, tt := range tests {
		b := tt.build
		err := s.CreateBuild(t.Context(), &b)
		wantCode(t, "CreateBuild("+tt.name+")", err, ferry.EINVALID)
	}
	got, err := s.Builds(t.Context(), ledger.BuildFilter{})
	if err != nil {
		t.Fatalf("Builds() = %v", err)
	}
	if len(got) != 0 {
		t.Errorf("after refused creates, Builds() = %v, want none", buildIDs(got))
	}
}

func testDuplicateCommit(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	first := mustCreate(t, s, newBuild("app", 1))
	want := utcBuild(first)

	dup := newBuild("app", 1)
	dup.Subject = "the same commit again"
	wantCode(t, "CreateBuild(same app and commit)", s.CreateBuild(t.Context(), dup), ferry.ECONFLICT)

	got, err := s.BuildByCommit(t.Context(), "app", commit(1))
	if err != nil {
		t.Fatalf("BuildByCommit = %v", err)
	}
	same(t, "build after duplicate create", got, want)
	all, err := s.Builds(t.Context(), ledger.BuildFilter{})
	if err != nil {
		t.Fatalf("Builds() = %v", err)
	}
	if len(all) != 1 {
		t.Errorf("Builds() after duplicate = %v, want one build", buildIDs(all))
	}
}

func testListBuilds(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	specs := []struct {
		app, branch string
		state       ferry.BuildState
	}{
		{"a", "master", ferry.BuildSucceeded},  // 0
		{"a", "master", ferry.BuildFailed},     // 1
		{"b", "master", ferry.BuildSucceeded},  // 2
		{"a", "release", ferry.BuildSucceeded}, // 3
		{"a", "master", ferry.BuildSuperseded}, // 4
		{"a", "master", ferry.BuildRunning},    // 5
		{"b", "master", ferry.BuildQueued},     // 6
		{"a", "master", ferry.BuildQueued},     // 7
	}
	var builds []*ferry.Build
	for i, sp := range specs {
		b := newBuild(sp.app, i)
		b.Branch, b.State = sp.branch, sp.state
		builds = append(builds, mustCreate(t, s, b))
	}
	// One build with steps, to show that lists leave steps out.
	if err := s.SaveStep(ctx, ferry.Step{BuildID: builds[7].ID, Seq: 1, Name: "test", State: ferry.StepRunning}); err != nil {
		t.Fatalf("SaveStep = %v", err)
	}
	ids := func(idx ...int) []int64 {
		out := []int64{}
		for _, i := range idx {
			out = append(out, builds[i].ID)
		}
		return out
	}

	tests := []struct {
		name   string
		filter ledger.BuildFilter
		want   []int64
	}{
		{"all, newest first", ledger.BuildFilter{}, ids(7, 6, 5, 4, 3, 2, 1, 0)},
		{"app", ledger.BuildFilter{App: "b"}, ids(6, 2)},
		{"app and branch", ledger.BuildFilter{App: "a", Branch: "master"}, ids(7, 5, 4, 1, 0)},
		{"branch", ledger.BuildFilter{Branch: "release"}, ids(3)},
		{"states", ledger.BuildFilter{States: []ferry.BuildState{ferry.BuildQueued, ferry.BuildRunning}}, ids(7, 6, 5)},
		{"app and one state", ledger.BuildFilter{App: "a", States: []ferry.BuildState{ferry.BuildSucceeded}}, ids(3, 0)},
		{"before", ledger.BuildFilter{BeforeID: builds[4].ID}, ids(3, 2, 1, 0)},
		{"limit", ledger.BuildFilter{Limit: 3}, ids(7, 6, 5)},
		{"before and limit", ledger.BuildFilter{App: "a", BeforeID: builds[5].ID, Limit: 2}, ids(4, 3)},
		{"no match", ledger.BuildFilter{App: "c"}, ids()},
		{"unknown state", ledger.BuildFilter{States: []ferry.BuildState{"exploded"}}, ids()},
	}
	for _, tt := range tests {
		got, err := s.Builds(ctx, tt.filter)
		if err != nil {
			t.Errorf("Builds(%s) = %v", tt.name, err)
			continue
		}
		if !slices.Equal(buildIDs(got), tt.want) {
			t.Errorf("Builds(%s) = %v, want %v", tt.name, buildIDs(got), tt.want)
		}
		if got == nil {
			t.Errorf("Builds(%s) = nil, want an empty slice", tt.name)
		}
		for _, b := range got {
			if len(b.Steps) != 0 {
				t.Errorf("Builds(%s): build %d has %d steps, want lists without steps", tt.name, b.ID, len(b.Steps))
			}
		}
	}

	// Every field comes back in lists too.
	got, err := s.Builds(ctx, ledger.BuildFilter{Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("Builds(limit 1) = %v, %v", got, err)
	}
	want := utcBuild(builds[7])
	want.Steps = nil
	same(t, "Builds(limit 1)[0]", got[0], want)

	// Paging with BeforeID visits every build once, newest first.
	var paged []int64
	f := ledger.BuildFilter{Limit: 3}
	for range len(builds) {
		page, err := s.Builds(ctx, f)
		if err != nil {
			t.Fatalf("Builds(%+v) = %v", f, err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, buildIDs(page)...)
		f.BeforeID = page[len(page)-1].ID
	}
	if want := ids(7, 6, 5, 4, 3, 2, 1, 0); !slices.Equal(paged, want) {
		t.Errorf("paging by 3 = %v, want %v", paged, want)
	}
}

func testUpdateBuild(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	b := mustCreate(t, s, newBuild("app", 1))

	upd := *b
	upd.State = ferry.BuildSucceeded
	upd.Reason = "tests passed"
	upd.Image = "registry.example.com/app"
	upd.Digest = "sha256:" + fmt.Sprintf("%064x", 7)
	upd.StartedAt = at(2 * time.Second)
	upd.FinishedAt = at(90 * time.Second)
	upd.Subject = "a better subject"
	upd.Author = "Grace <grace@example.com>"
	// Keys and history do not change.
	upd.App, upd.Commit, upd.Branch, upd.Trigger, upd.CreatedAt = "changed", commit(99), "changed", "changed", at(time.Hour)
	if err := s.UpdateBuild(ctx, &upd); err != nil {
		t.Fatalf("UpdateBuild = %v", err)
	}
	want := *b
	want.State, want.Reason, want.Image, want.Digest = upd.State, upd.Reason, upd.Image, upd.Digest
	want.StartedAt, want.FinishedAt, want.Subject, want.Author = upd.StartedAt, upd.FinishedAt, upd.Subject, upd.Author
	got, err := s.Build(ctx, b.ID)
	if err != nil {
		t.Fatalf("Build(%d) = %v", b.ID, err)
	}
	same(t, "Build after UpdateBuild", got, utcBuild(&want))

	// Zero times clear what was stored.
	upd2 := *got
	upd2.StartedAt, upd2.FinishedAt = time.Time{}, time.Time{}
	if err := s.UpdateBuild(ctx, &upd2); err != nil {
		t.Fatalf("UpdateBuild(zero times) = %v", err)
	}
	got, err = s.Build(ctx, b.ID)
	if err != nil {
		t.Fatalf("Build(%d) = %v", b.ID, err)
	}
	if !got.StartedAt.IsZero() || !got.FinishedAt.IsZero() {
		t.Errorf("after clearing, times = %v, %v, want zero", got.StartedAt, got.FinishedAt)
	}

	bad := *got
	bad.State = "exploded"
	wantCode(t, "UpdateBuild(unknown state)", s.UpdateBuild(ctx, &bad), ferry.EINVALID)
	missing := *got
	missing.ID = b.ID + 1000
	wantCode(t, "UpdateBuild(missing)", s.UpdateBuild(ctx, &missing), ferry.ENOTFOUND)
}

func testTransitionBuild(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	b := mustCreate(t, s, newBuild("app", 1))
	get := func() *ferry.Build {
		t.Helper()
		got, err := s.Build(ctx, b.ID)
		if err != nil {
			t.Fatalf("Build(%d) = %v", b.ID, err)
		}
		return got
	}
	check := func(what string, state ferry.BuildState, reason string, started, finished time.Time) {
		t.Helper()
		got := get()
		if got.State != state || got.Reason != reason || !got.StartedAt.Equal(started) || !got.FinishedAt.Equal(finished) {
			t.Errorf("%s: build is %s %q started %v finished %v, want %s %q started %v finished %v",
				what, got.State, got.Reason, got.StartedAt, got.FinishedAt, state, reason, started, finished)
		}
	}
	start, end := at(10*time.Second), at(70*time.Second)

	if err := s.TransitionBuild(ctx, b.ID, ferry.BuildQueued, ferry.BuildRunning, "", start); err != nil {
		t.Fatalf("TransitionBuild(queued→running) = %v", err)
	}
	check("queued→running", ferry.BuildRunning, "", start, time.Time{})

	err := s.TransitionBuild(ctx, b.ID, ferry.BuildQueued, ferry.BuildRunning, "", at(time.Hour))
	wantCode(t, "TransitionBuild(queued→running) again", err, ferry.ECONFLICT)
	check("after lost transition", ferry.BuildRunning, "", start, time.Time{})

	if err := s.TransitionBuild(ctx, b.ID, ferry.BuildRunning, ferry.BuildFailed, "test step failed", end); err != nil {
		t.Fatalf("TransitionBuild(running→failed) = %v", err)
	}
	check("running→failed", ferry.BuildFailed, "test step failed", start, end)

	wantCode(t, "TransitionBuild(running→succeeded) of a failed build",
		s.TransitionBuild(ctx, b.ID, ferry.BuildRunning, ferry.BuildSucceeded, "", end), ferry.ECONFLICT)

	// Requeued (a retry) clears the times; running again restarts them.
	if err := s.TransitionBuild(ctx, b.ID, ferry.BuildFailed, ferry.BuildQueued, "retry", time.Time{}); err != nil {
		t.Fatalf("TransitionBuild(failed→queued) = %v", err)
	}
	check("failed→queued", ferry.BuildQueued, "retry", time.Time{}, time.Time{})
	restart := at(2 * time.Hour)
	if err := s.TransitionBuild(ctx, b.ID, ferry.BuildQueued, ferry.BuildRunning, "", restart); err != nil {
		t.Fatalf("TransitionBuild(queued→running) = %v", err)
	}
	check("queued→running again", ferry.BuildRunning, "", restart, time.Time{})

	wantCode(t, "TransitionBuild(to running without a time)",
		s.TransitionBuild(ctx, b.ID, ferry.BuildRunning, ferry.BuildSucceeded, "", time.Time{}), ferry.EINVALID)
	wantCode(t, "TransitionBuild(unknown state)",
		s.TransitionBuild(ctx, b.ID, ferry.BuildRunning, "exploded", "", end), ferry.EINVALID)
	check("after refused transitions", ferry.BuildRunning, "", restart, time.Time{})
}

// testTransitionRace has eight goroutines, on two stores of one database
// (as two ferry servers would be), race to start the same build: exactly one
// may win.
func testTransitionRace(t *testing.T, open OpenFunc) {
	stores := []ledger.Store{mustOpen(t, open), mustOpen(t, open)}
	ctx := t.Context()
	const racers = 8
	for round := range 5 {
		b := mustCreate(t, stores[0], newBuild("app", round))
		errs := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				errs[i] = stores[i%2].TransitionBuild(ctx, b.ID, ferry.BuildQueued, ferry.BuildRunning,
					fmt.Sprintf("racer %d", i), at(time.Duration(i)*time.Second))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch ferry.ErrorCode(err) {
			case "":
				if winner >= 0 {
					t.Errorf("round %d: racers %d and %d both won", round, winner, i)
				}
				winner = i
			case ferry.ECONFLICT:
			default:
				t.Errorf("round %d: racer %d: TransitionBuild = %v, want nil or conflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no racer won", round)
		}
		got, err := stores[1].Build(ctx, b.ID)
		if err != nil {
			t.Fatalf("Build(%d) = %v", b.ID, err)
		}
		if want := fmt.Sprintf("racer %d", winner); got.State != ferry.BuildRunning || got.Reason != want ||
			!got.StartedAt.Equal(at(time.Duration(winner)*time.Second)) {
			t.Errorf("round %d: build is %s %q started %v, want running %q as set by the winner",
				round, got.State, got.Reason, got.StartedAt, want)
		}
	}
}

func testSteps(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	b := mustCreate(t, s, newBuild("app", 1))
	other := mustCreate(t, s, newBuild("app", 2))

	steps := []ferry.Step{
		{BuildID: b.ID, Seq: 3, Name: "push", State: ferry.StepPending},
		{BuildID: b.ID, Seq: 1, Name: "test", State: ferry.StepSucceeded, Attempts: 1, StartedAt: at(time.Second), FinishedAt: at(5 * time.Second)},
		{BuildID: b.ID, Seq: 4, Name: "tag", State: ferry.StepPending},
		{BuildID: b.ID, Seq: 2, Name: "build", State: ferry.StepRunning, Attempts: 2, Error: "registry down", StartedAt: at(6 * time.Second)},
		{BuildID: other.ID, Seq: 1, Name: "test", State: ferry.StepFailed, Attempts: 1, Error: "exit status 1"},
	}
	for _, st := range steps {
		if err := s.SaveStep(ctx, st); err != nil {
			t.Fatalf("SaveStep(%s) = %v", st.Name, err)
		}
	}
	// Upsert: the same name replaces the step.
	build := ferry.Step{BuildID: b.ID, Seq: 2, Name: "build", State: ferry.StepSucceeded, Attempts: 3,
		StartedAt: at(6 * time.Second), FinishedAt: at(30 * time.Second)}
	if err := s.SaveStep(ctx, build); err != nil {
		t.Fatalf("SaveStep(build again) = %v", err)
	}
	got, err := s.Build(ctx, b.ID)
	if err != nil {
		t.Fatalf("Build(%d) = %v", b.ID, err)
	}
	want := []ferry.Step{utcStep(steps[1]), utcStep(build), utcStep(steps[0]), utcStep(steps[2])}
	same(t, "Build.Steps", got.Steps, want)

	got, err = s.BuildByCommit(ctx, other.App, other.Commit)
	if err != nil {
		t.Fatalf("BuildByCommit = %v", err)
	}
	same(t, "BuildByCommit.Steps", got.Steps, []ferry.Step{utcStep(steps[4])})

	wantCode(t, "SaveStep(no name)", s.SaveStep(ctx, ferry.Step{BuildID: b.ID, State: ferry.StepPending}), ferry.EINVALID)
	wantCode(t, "SaveStep(unknown state)", s.SaveStep(ctx, ferry.Step{BuildID: b.ID, Name: "x", State: "exploded"}), ferry.EINVALID)
	wantCode(t, "SaveStep(missing build)", s.SaveStep(ctx, ferry.Step{BuildID: other.ID + 100, Name: "x", State: ferry.StepPending}), ferry.ENOTFOUND)
}

func testLogs(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	b := mustCreate(t, s, newBuild("app", 1))
	other := mustCreate(t, s, newBuild("app", 2))

	line := func(step, text string, sec int) ferry.LogLine {
		return ferry.LogLine{Step: step, Text: text, Time: at(time.Duration(sec) * time.Second)}
	}
	first := []ferry.LogLine{line("test", "=== RUN TestHello", 1), line("test", "--- PASS", 2), line("test", "", 3)}
	if err := s.AppendLog(ctx, b.ID, first); err != nil {
		t.Fatalf("AppendLog = %v", err)
	}
	second := []ferry.LogLine{line("build", "odd bytes: \x00 \xff end", 4), line("build", "ok", 5)}
	if err := s.AppendLog(ctx, b.ID, second); err != nil {
		t.Fatalf("AppendLog = %v", err)
	}
	all := append(slices.Clone(first), second...)
	for i, l := range all {
		if l.Seq != int64(i+1) || l.BuildID != b.ID {
			t.Errorf("line %d written back with BuildID %d Seq %d, want %d %d", i, l.BuildID, l.Seq, b.ID, i+1)
		}
	}
	if want := "odd bytes: \uFFFD \uFFFD end"; second[0].Text != want {
		t.Errorf("stored text written back = %q, want %q", second[0].Text, want)
	}

	// Another build counts from 1.
	mine := []ferry.LogLine{line("test", "other build", 1)}
	if err := s.AppendLog(ctx, other.ID, mine); err != nil {
		t.Fatalf("AppendLog(other) = %v", err)
	}
	if mine[0].Seq != 1 {
		t.Errorf("first line of another build has Seq %d, want 1", mine[0].Seq)
	}

	// A refused line refuses the whole append, and uses up no numbers.
	bad := []ferry.LogLine{line("x", "fine", 6), {Step: "x", Text: "no time"}}
	wantCode(t, "AppendLog(line without time)", s.AppendLog(ctx, b.ID, bad), ferry.EINVALID)
	if err := s.AppendLog(ctx, b.ID, nil); err != nil {
		t.Errorf("AppendLog(nothing) = %v, want nil", err)
	}

	utcLines := func(ls []ferry.LogLine) []ferry.LogLine {
		out := []ferry.LogLine{}
		for _, l := range ls {
			l.Time = l.Time.UTC()
			out = append(out, l)
		}
		return out
	}
	tests := []struct {
		after int64
		limit int
		want  []ferry.LogLine
	}{
		{0, 0, all},
		{0, 2, all[:2]},
		{2, 2, all[2:4]},
		{3, 100, all[3:]},
		{5, 0, nil},
		{99, 0, nil},
	}
	for _, tt := range tests {
		got, err := s.Logs(ctx, b.ID, tt.after, tt.limit)
		if err != nil {
			t.Errorf("Logs(%d, after %d, limit %d) = %v", b.ID, tt.after, tt.limit, err)
			continue
		}
		if got == nil {
			t.Errorf("Logs(%d, after %d, limit %d) = nil, want an empty slice", b.ID, tt.after, tt.limit)
		}
		same(t, fmt.Sprintf("Logs(%d, after %d, limit %d)", b.ID, tt.after, tt.limit), got, utcLines(tt.want))
	}

	next := []ferry.LogLine{line("tag", "tagged", 7)}
	if err := s.AppendLog(ctx, b.ID, next); err != nil {
		t.Fatalf("AppendLog = %v", err)
	}
	if next[0].Seq != 6 {
		t.Errorf("after a refused append, next Seq = %d, want 6", next[0].Seq)
	}
}

// testConcurrentAppends has eight goroutines, spread over two stores of one
// database, append log lines and save steps of one build at once: numbers
// stay unique and gapless, each append's lines are consecutive, and nothing
// fails with a busy or locked database.
func testConcurrentAppends(t *testing.T, open OpenFunc) {
	stores := []ledger.Store{mustOpen(t, open), mustOpen(t, open)}
	ctx := t.Context()
	b := mustCreate(t, stores[0], newBuild("app", 1))
	const (
		writers = 8
		appends = 25
		perCall = 4
	)
	written := make([][]ferry.LogLine, writers)
	errs := make(chan error, writers*appends*2)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			s := stores[g%2]
			step := fmt.Sprintf("step%d", g)
			for a := range appends {
				lines := make([]ferry.LogLine, perCall)
				for i := range lines {
					lines[i] = ferry.LogLine{Step: step, Text: fmt.Sprintf("g%d a%d l%d", g, a, i), Time: at(time.Duration(a) * time.Millisecond)}
				}
				if err := s.AppendLog(ctx, b.ID, lines); err != nil {
					errs <- fmt.Errorf("writer %d: AppendLog: %w", g, err)
					return
				}
				for i := 1; i < len(lines); i++ {
					if lines[i].Seq != lines[i-1].Seq+1 {
						errs <- fmt.Errorf("writer %d: one append got Seqs %d then %d", g, lines[i-1].Seq, lines[i].Seq)
					}
				}
				written[g] = append(written[g], lines...)
				if err := s.SaveStep(ctx, ferry.Step{BuildID: b.ID, Seq: g, Name: step, State: ferry.StepRunning, Attempts: a + 1}); err != nil {
					errs <- fmt.Errorf("writer %d: SaveStep: %w", g, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	const total = writers * appends * perCall
	got, err := stores[1].Logs(ctx, b.ID, 0, total+10)
	if err != nil {
		t.Fatalf("Logs = %v", err)
	}
	if len(got) != total {
		t.Fatalf("Logs returned %d lines, want %d", len(got), total)
	}
	bySeq := map[int64]string{}
	for i, l := range got {
		if l.Seq != int64(i+1) {
			t.Fatalf("line %d has Seq %d, want %d (unique and gapless)", i, l.Seq, i+1)
		}
		bySeq[l.Seq] = l.Text
	}
	for g, lines := range written {
		for _, l := range lines {
			if bySeq[l.Seq] != l.Text {
				t.Errorf("writer %d was given Seq %d for %q, but the ledger has %q there", g, l.Seq, l.Text, bySeq[l.Seq])
			}
		}
	}
	build, err := stores[0].Build(ctx, b.ID)
	if err != nil {
		t.Fatalf("Build = %v", err)
	}
	if len(build.Steps) != writers {
		t.Fatalf("build has %d steps, want %d", len(build.Steps), writers)
	}
	for i, st := range build.Steps {
		if st.Name != fmt.Sprintf("step%d", i) || st.Attempts != appends {
			t.Errorf("step %d = %s with %d attempts, want step%d with %d", i, st.Name, st.Attempts, i, appends)
		}
	}
}

func testEvents(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	b := mustCreate(t, s, newBuild("app", 1))
	specs := []ferry.Event{
		{Kind: "build.queued", App: "app", BuildID: b.ID, Commit: b.Commit, Actor: "ferry", Message: "queued"},    // 0
		{Kind: "source.error", App: "app", Actor: "ferry", Message: "fetch failed", Reason: "connection refused"}, // 1
		{Kind: "build.failed", App: "app", BuildID: b.ID, Actor: "ferry", Message: "tests failed"},                // 2
		{Kind: "deploy.started", App: "app", Env: "dev", Actor: "ferry", Message: "rolling"},                      // 3
		{Kind: "buildx.weird", App: "other", Actor: "ada", Message: "not a build event"},                          // 4
		{Kind: "deploy.started", App: "app", Env: "prod", Actor: "ada", Message: "rolling", Reason: "release"},    // 5
		{Kind: "deploy.started", App: "other", Env: "dev", Actor: "ferry", Message: "rolling"},                    // 6
	}
	var events []ferry.Event
	for i, e := range specs {
		e.Time = at(time.Duration(i) * time.Minute)
		if err := s.AddEvent(ctx, &e); err != nil {
			t.Fatalf("AddEvent(%s) = %v", e.Kind, err)
		}
		if e.ID <= 0 || (i > 0 && e.ID <= events[i-1].ID) {
			t.Errorf("AddEvent(%d) set ID %d, want increasing IDs", i, e.ID)
		}
		events = append(events, e)
	}
	pick := func(idx ...int) []ferry.Event {
		out := []ferry.Event{}
		for _, i := range idx {
			e := events[i]
			e.Time = e.Time.UTC()
			out = append(out, e)
		}
		return out
	}
	tests := []struct {
		name   string
		filter ledger.EventFilter
		want   []ferry.Event
	}{
		{"all, newest first", ledger.EventFilter{}, pick(6, 5, 4, 3, 2, 1, 0)},
		{"app", ledger.EventFilter{App: "other"}, pick(6, 4)},
		{"env", ledger.EventFilter{Env: "dev"}, pick(6, 3)},
		{"app and env", ledger.EventFilter{App: "app", Env: "prod"}, pick(5)},
		{"kind prefix", ledger.EventFilter{Kind: "build."}, pick(2, 0)},
		{"whole kind", ledger.EventFilter{Kind: "deploy.started", App: "app"}, pick(5, 3)},
		{"kind prefix is literal", ledger.EventFilter{Kind: "build_"}, pick()},
		{"kind prefix is literal (%)", ledger.EventFilter{Kind: "%"}, pick()},
		{"kind prefix is case-sensitive", ledger.EventFilter{Kind: "BUILD."}, pick()},
		{"build", ledger.EventFilter{BuildID: b.ID}, pick(2, 0)},
		{"before", ledger.EventFilter{BeforeID: events[3].ID}, pick(2, 1, 0)},
		{"limit", ledger.EventFilter{Limit: 2}, pick(6, 5)},
		{"before and limit", ledger.EventFilter{App: "app", BeforeID: events[5].ID, Limit: 2}, pick(3, 2)},
		{"no match", ledger.EventFilter{App: "nope"}, pick()},
	}
	for _, tt := range tests {
		got, err := s.Events(ctx, tt.filter)
		if err != nil {
			t.Errorf("Events(%s) = %v", tt.name, err)
			continue
		}
		if got == nil {
			t.Errorf("Events(%s) = nil, want an empty slice", tt.name)
		}
		same(t, "Events("+tt.name+")", got, tt.want)
	}

	wantCode(t, "AddEvent(no kind)", s.AddEvent(ctx, &ferry.Event{Time: t0, Message: "x"}), ferry.EINVALID)
	wantCode(t, "AddEvent(no time)", s.AddEvent(ctx, &ferry.Event{Kind: "x"}), ferry.EINVALID)
	odd := ferry.Event{Kind: "source.error", Time: t0, Message: "bad \xfe bytes \x00"}
	if err := s.AddEvent(ctx, &odd); err != nil {
		t.Fatalf("AddEvent(odd bytes) = %v", err)
	}
	got, err := s.Events(ctx, ledger.EventFilter{Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("Events(limit 1) = %v, %v", got, err)
	}
	if want := "bad \uFFFD bytes \uFFFD"; got[0].Message != want || odd.Message != want {
		t.Errorf("stored message = %q, written back %q, want %q", got[0].Message, odd.Message, want)
	}
}

func testNotFound(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	b := mustCreate(t, s, newBuild("app", 1))
	missing := b.ID + 1000
	_, buildErr := s.Build(ctx, missing)
	_, commitErr := s.BuildByCommit(ctx, "app", commit(2))
	_, otherAppErr := s.BuildByCommit(ctx, "other", b.Commit)
	_, logsErr := s.Logs(ctx, missing, 0, 0)
	_, deploymentErr := s.Deployment(ctx, missing)
	_, currentErr := s.Current(ctx, "app", "dev")
	tests := []struct {
		name string
		err  error
	}{
		{"Build", buildErr},
		{"BuildByCommit", commitErr},
		{"BuildByCommit(other app)", otherAppErr},
		{"UpdateBuild", s.UpdateBuild(ctx, &ferry.Build{ID: missing, State: ferry.BuildFailed})},
		{"TransitionBuild", s.TransitionBuild(ctx, missing, ferry.BuildQueued, ferry.BuildRunning, "", t0)},
		{"SaveStep", s.SaveStep(ctx, ferry.Step{BuildID: missing, Name: "test", State: ferry.StepPending})},
		{"AppendLog", s.AppendLog(ctx, missing, []ferry.LogLine{{Text: "x", Time: t0}})},
		{"Logs", logsErr},
		{"Deployment", deploymentErr},
		{"UpdateDeployment", s.UpdateDeployment(ctx, &ferry.Deployment{ID: missing, State: ferry.DeploymentFailed})},
		{"TransitionDeployment", s.TransitionDeployment(ctx, missing, ferry.DeploymentPending, ferry.DeploymentRolling, "", t0)},
		{"Current", currentErr},
	}
	for _, tt := range tests {
		wantCode(t, tt.name, tt.err, ferry.ENOTFOUND)
	}
	if want := fmt.Sprintf("build %d not found", missing); ferry.ErrorMessage(buildErr) != want {
		t.Errorf("Build(%d) message = %q, want %q", missing, ferry.ErrorMessage(buildErr), want)
	}
	if want := fmt.Sprintf("deployment %d not found", missing); ferry.ErrorMessage(deploymentErr) != want {
		t.Errorf("Deployment(%d) message = %q, want %q", missing, ferry.ErrorMessage(deploymentErr), want)
	}
	if want := "app has no succeeded deployment in dev"; ferry.ErrorMessage(currentErr) != want {
		t.Errorf("Current(app, dev) message = %q, want %q", ferry.ErrorMessage(currentErr), want)
	}
}

func testEmptyLists(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	builds, err := s.Builds(ctx, ledger.BuildFilter{})
	if err != nil {
		t.Fatalf("Builds() = %v", err)
	}
	events, err := s.Events(ctx, ledger.EventFilter{})
	if err != nil {
		t.Fatalf("Events() = %v", err)
	}
	deployments, err := s.Deployments(ctx, ledger.DeploymentFilter{})
	if err != nil {
		t.Fatalf("Deployments() = %v", err)
	}
	b := mustCreate(t, s, newBuild("app", 1))
	lines, err := s.Logs(ctx, b.ID, 0, 0)
	if err != nil {
		t.Fatalf("Logs() = %v", err)
	}
	mustDeploy(t, s, newDeployment("app", "dev", 1))
	noMatch, err := s.Deployments(ctx, ledger.DeploymentFilter{Env: "prod"})
	if err != nil {
		t.Fatalf("Deployments(prod) = %v", err)
	}
	for what, v := range map[string]any{"Builds on an empty ledger": builds, "Events on an empty ledger": events, "Logs of a new build": lines,
		"Deployments on an empty ledger": deployments, "Deployments(prod) of a ledger with a dev deployment": noMatch} {
		j, _ := json.Marshal(v)
		if string(j) != "[]" {
			t.Errorf("%s encodes as %s, want []", what, j)
		}
	}
}

func testReopen(t *testing.T, open OpenFunc) {
	ctx := t.Context()
	s, err := open(ctx)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	b := newBuild("app", 1)
	if err := s.CreateBuild(ctx, b); err != nil {
		t.Fatalf("CreateBuild = %v", err)
	}
	st := ferry.Step{BuildID: b.ID, Seq: 1, Name: "test", State: ferry.StepSucceeded, Attempts: 1, StartedAt: at(time.Second)}
	lines := []ferry.LogLine{{Step: "test", Text: "ok", Time: at(time.Second)}}
	ev := ferry.Event{Kind: "build.queued", App: "app", BuildID: b.ID, Time: at(0), Message: "queued"}
	d := newDeployment("app", "dev", 1)
	d.BuildID = b.ID
	for _, err := range []error{s.SaveStep(ctx, st), s.AppendLog(ctx, b.ID, lines), s.AddEvent(ctx, &ev), s.CreateDeployment(ctx, d)} {
		if err != nil {
			t.Fatalf("write = %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}

	s = mustOpen(t, open)
	want := *b
	want.Steps = []ferry.Step{st}
	got, err := s.Build(ctx, b.ID)
	if err != nil {
		t.Fatalf("Build(%d) after reopen = %v", b.ID, err)
	}
	same(t, "Build after reopen", got, utcBuild(&want))
	gotLines, err := s.Logs(ctx, b.ID, 0, 0)
	if err != nil || len(gotLines) != 1 || gotLines[0].Text != "ok" {
		t.Errorf("Logs after reopen = %v, %v, want the one line", gotLines, err)
	}
	gotEvents, err := s.Events(ctx, ledger.EventFilter{})
	if err != nil || len(gotEvents) != 1 || gotEvents[0].ID != ev.ID {
		t.Errorf("Events after reopen = %v, %v, want event %d", gotEvents, err, ev.ID)
	}
	gotDeployment, err := s.Deployment(ctx, d.ID)
	if err != nil {
		t.Fatalf("Deployment(%d) after reopen = %v", d.ID, err)
	}
	same(t, "Deployment after reopen", gotDeployment, utcDeployment(d))
	more := []ferry.LogLine{{Step: "build", Text: "next", Time: at(2 * time.Second)}}
	if err := s.AppendLog(ctx, b.ID, more); err != nil {
		t.Fatalf("AppendLog after reopen = %v", err)
	}
	if more[0].Seq != 2 {
		t.Errorf("first line appended after reopen has Seq %d, want 2", more[0].Seq)
	}
	wantCode(t, "CreateBuild(same commit) after reopen", s.CreateBuild(ctx, newBuild("app", 1)), ferry.ECONFLICT)
}

// testConcurrentOpen opens a fresh database from several goroutines at once,
// as several ferry servers starting together would: the migrations run once
// and every store works. Opening again later finds nothing to migrate.
func testConcurrentOpen(t *testing.T, open OpenFunc) {
	ctx := t.Context()
	const n = 4
	stores := make([]ledger.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = open(ctx) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil { // s may hold a typed nil then
			t.Errorf("concurrent open %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { s.Close() })
	}
	if t.Failed() {
		return
	}
	for i, s := range stores {
		mustCreate(t, s, newBuild("app", i))
	}
	again := mustOpen(t, open)
	got, err := again.Builds(ctx, ledger.BuildFilter{})
	if err != nil {
		t.Fatalf("Builds() = %v", err)
	}
	if len(got) != n {
		t.Errorf("Builds() = %v, want %d builds, one from each store", buildIDs(got), n)
	}
	if err := errors.Join(stores[0].Close(), again.Close()); err != nil {
		t.Errorf("Close() = %v", err)
	}
}

// BenchAppendLog measures how many log lines per second s stores when they
// come perCall at a time, reported as the metric lines/s. Engines call it
// from their BenchmarkAppendLog with a fresh store.
func BenchAppendLog(b *testing.B, s ledger.Store, perCall int) {
	build := &ferry.Build{App: "bench", Commit: commit(1), CreatedAt: t0}
	if err := s.CreateBuild(b.Context(), build); err != nil {
		b.Fatalf("CreateBuild = %v", err)
	}
	lines := make([]ferry.LogLine, perCall)
	n := 0
	for b.Loop() {
		for i := range lines {
			lines[i] = ferry.LogLine{Step: "test", Text: "ok  \tgithub.com/ferryhq/birthday-app/internal/store\t0.042s", Time: t0}
		}
		if err := s.AppendLog(b.Context(), build.ID, lines); err != nil {
			b.Fatalf("AppendLog = %v", err)
		}
		n += perCall
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}
