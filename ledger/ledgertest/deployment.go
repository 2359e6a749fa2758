package ledgertest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// digest returns a distinct, valid sha256 digest for i.
func digest(i int) string { return fmt.Sprintf("sha256:%064x", 0xd1e57000+i) }

func newDeployment(app, env string, i int) *ferry.Deployment {
	return &ferry.Deployment{
		App:       app,
		Env:       env,
		Kind:      ferry.DeployDeploy,
		State:     ferry.DeploymentPending,
		Commit:    commit(i),
		Digest:    digest(i),
		Replicas:  2,
		Actor:     "ferry",
		Reason:    fmt.Sprintf("build %d succeeded", i),
		CreatedAt: at(time.Duration(i) * time.Second),
	}
}

func mustDeploy(t *testing.T, s ledger.Store, d *ferry.Deployment) *ferry.Deployment {
	t.Helper()
	if err := s.CreateDeployment(t.Context(), d); err != nil {
		t.Fatalf("CreateDeployment(%s %s %s) = %v", d.App, d.Env, d.Kind, err)
	}
	return d
}

func mustGetDeployment(t *testing.T, s ledger.Store, id int64) *ferry.Deployment {
	t.Helper()
	d, err := s.Deployment(t.Context(), id)
	if err != nil {
		t.Fatalf("Deployment(%d) = %v", id, err)
	}
	return d
}

// utcDeployment is d as the ledger gives it back: times in UTC.
func utcDeployment(d *ferry.Deployment) *ferry.Deployment {
	c := *d
	c.CreatedAt, c.StartedAt, c.FinishedAt = utc(c.CreatedAt), utc(c.StartedAt), utc(c.FinishedAt)
	return &c
}

func deploymentIDs(ds []*ferry.Deployment) []int64 {
	ids := []int64{}
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

func testDeploymentCreateAndGet(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	b := mustCreate(t, s, newBuild("birthday-app", 1))

	full := &ferry.Deployment{
		App:        "birthday-app",
		Env:        "prod",
		Kind:       ferry.DeployPromote,
		State:      ferry.DeploymentRolledBack,
		BuildID:    b.ID,
		Commit:     b.Commit,
		Digest:     digest(1),
		Release:    "RC20250314_1509",
		Replicas:   3,
		Previous:   digest(0),
		Actor:      "ada",
		Reason:     "Friday release — with ünïcode",
		Error:      "verification: GET /health = 503, want 200",
		CreatedAt:  at(0),
		StartedAt:  at(time.Second),
		FinishedAt: at(time.Minute),
	}
	mustDeploy(t, s, full)
	if full.ID <= 0 {
		t.Fatalf("CreateDeployment set ID = %d, want > 0", full.ID)
	}
	got := mustGetDeployment(t, s, full.ID)
	same(t, fmt.Sprintf("Deployment(%d)", full.ID), got, utcDeployment(full))
	for _, tm := range []struct {
		what      string
		got, want time.Time
	}{
		{"CreatedAt", got.CreatedAt, full.CreatedAt},
		{"StartedAt", got.StartedAt, full.StartedAt},
		{"FinishedAt", got.FinishedAt, full.FinishedAt},
	} {
		if tm.got.Location() != time.UTC || !tm.got.Equal(tm.want) {
			t.Errorf("Deployment(%d).%s = %v, want %v in UTC", full.ID, tm.what, tm.got, tm.want)
		}
	}

	// Without a build, a release, a previous digest or times; a scale keeps
	// the commit and digest that run.
	minimal := &ferry.Deployment{App: "birthday-app", Env: "dev", Kind: ferry.DeployScale, State: ferry.DeploymentPending,
		Commit: commit(2), Digest: digest(2), Actor: "grace", CreatedAt: at(time.Hour)}
	mustDeploy(t, s, minimal)
	if minimal.ID <= full.ID {
		t.Errorf("second deployment ID = %d, want > %d", minimal.ID, full.ID)
	}
	same(t, "minimal deployment", mustGetDeployment(t, s, minimal.ID), utcDeployment(minimal))

	// Odd bytes in free text are stored replaced, and written back.
	odd := newDeployment("birthday-app", "dev", 3)
	odd.Reason, odd.Error, odd.Actor = "bad \xff reason", "nul \x00 error", "ada \xfe"
	mustDeploy(t, s, odd)
	if odd.Reason != "bad \uFFFD reason" || odd.Error != "nul \uFFFD error" || odd.Actor != "ada \uFFFD" {
		t.Errorf("written back reason %q error %q actor %q, want odd bytes replaced by U+FFFD", odd.Reason, odd.Error, odd.Actor)
	}
	same(t, "deployment with odd bytes", mustGetDeployment(t, s, odd.ID), utcDeployment(odd))

	// A build that does not exist is not found, and nothing is stored.
	ghost := newDeployment("birthday-app", "dev", 4)
	ghost.BuildID = b.ID + 1000
	wantCode(t, "CreateDeployment(missing build)", s.CreateDeployment(ctx, ghost), ferry.ENOTFOUND)
	all, err := s.Deployments(ctx, ledger.DeploymentFilter{})
	if err != nil {
		t.Fatalf("Deployments() = %v", err)
	}
	if want := []int64{odd.ID, minimal.ID, full.ID}; !slices.Equal(deploymentIDs(all), want) {
		t.Errorf("Deployments() = %v, want %v", deploymentIDs(all), want)
	}
}

func testDeploymentInvalid(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	tests := []struct {
		name   string
		change func(d *ferry.Deployment)
	}{
		{"no app", func(d *ferry.Deployment) { d.App = "" }},
		{"no env", func(d *ferry.Deployment) { d.Env = "" }},
		{"no kind", func(d *ferry.Deployment) { d.Kind = "" }},
		{"unknown kind", func(d *ferry.Deployment) { d.Kind = "teleport" }},
		{"no state", func(d *ferry.Deployment) { d.State = "" }},
		{"unknown state", func(d *ferry.Deployment) { d.State = "exploded" }},
		{"no actor", func(d *ferry.Deployment) { d.Actor = "" }},
		{"no creation time", func(d *ferry.Deployment) { d.CreatedAt = time.Time{} }},
		{"no commit", func(d *ferry.Deployment) { d.Commit = "" }},
		{"no commit for a scale", func(d *ferry.Deployment) { d.Kind, d.Commit = ferry.DeployScale, "" }},
		{"short commit", func(d *ferry.Deployment) { d.Commit = commit(1)[:12] }},
		{"upper-case commit", func(d *ferry.Deployment) { d.Commit = "ABCDEF" + commit(1)[6:] }},
		{"no digest", func(d *ferry.Deployment) { d.Digest = "" }},
		{"digest without algorithm", func(d *ferry.Deployment) { d.Digest = digest(1)[len("sha256:"):] }},
		{"short digest", func(d *ferry.Deployment) { d.Digest = digest(1)[:40] }},
		{"upper-case digest", func(d *ferry.Deployment) { d.Digest = "sha256:ABCDEF" + digest(1)[13:] }},
		{"digest of another algorithm", func(d *ferry.Deployment) { d.Digest = "sha512:" + digest(1)[7:] }},
		{"bad previous digest", func(d *ferry.Deployment) { d.Previous = "latest" }},
		{"negative replicas", func(d *ferry.Deployment) { d.Replicas = -1 }},
		{"negative build id", func(d *ferry.Deployment) { d.BuildID = -1 }},
	}
	for _, tt := range tests {
		d := newDeployment("app", "dev", 1)
		tt.change(d)
		wantCode(t, "CreateDeployment("+tt.name+")", s.CreateDeployment(ctx, d), ferry.EINVALID)
	}
	got, err := s.Deployments(ctx, ledger.DeploymentFilter{})
	if err != nil {
		t.Fatalf("Deployments() = %v", err)
	}
	if len(got) != 0 {
		t.Errorf("after refused creates, Deployments() = %v, want none", deploymentIDs(got))
	}
	// Each kind and state is accepted.
	for i, k := range []ferry.DeploymentKind{ferry.DeployDeploy, ferry.DeployPromote, ferry.DeployRollback, ferry.DeployAutoRollback, ferry.DeployScale} {
		d := newDeployment("app", "dev", i)
		d.Kind = k
		mustDeploy(t, s, d)
	}
	for i, st := range []ferry.DeploymentState{ferry.DeploymentPending, ferry.DeploymentRolling, ferry.DeploymentVerifying,
		ferry.DeploymentSucceeded, ferry.DeploymentFailed, ferry.DeploymentRolledBack, ferry.DeploymentSuperseded} {
		d := newDeployment("app", "dev", i)
		d.State = st
		mustDeploy(t, s, d)
	}
}

func testListDeployments(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	specs := []struct {
		app, env string
		kind     ferry.DeploymentKind
		state    ferry.DeploymentState
		build    int // commit and digest number
		release  string
	}{
		{"a", "dev", ferry.DeployDeploy, ferry.DeploymentSucceeded, 1, ""},                   // 0
		{"a", "prod", ferry.DeployPromote, ferry.DeploymentSucceeded, 1, "RC20250314_1509"},  // 1
		{"a", "dev", ferry.DeployDeploy, ferry.DeploymentFailed, 2, ""},                      // 2
		{"a", "dev", ferry.DeployAutoRollback, ferry.DeploymentSucceeded, 1, ""},             // 3
		{"b", "dev", ferry.DeployDeploy, ferry.DeploymentSucceeded, 1, ""},                   // 4
		{"a", "dev", ferry.DeployDeploy, ferry.DeploymentRolling, 3, ""},                     // 5
		{"a", "prod", ferry.DeployScale, ferry.DeploymentSucceeded, 1, "RC20250314_1509"},    // 6
		{"a", "prod", ferry.DeployPromote, ferry.DeploymentPending, 3, "RC20250315_0900"},    // 7
		{"a", "prod", ferry.DeployRollback, ferry.DeploymentSucceeded, 1, "RC20250314_1509"}, // 8
		{"b", "prod", ferry.DeployPromote, ferry.DeploymentSucceeded, 1, "RC20250314_1509"},  // 9
		{"a", "dev", ferry.DeployDeploy, ferry.DeploymentSuperseded, 4, ""},                  // 10
	}
	var ds []*ferry.Deployment
	for i, sp := range specs {
		d := newDeployment(sp.app, sp.env, sp.build)
		d.Kind, d.State, d.Release = sp.kind, sp.state, sp.release
		d.CreatedAt = at(time.Duration(i) * time.Minute)
		ds = append(ds, mustDeploy(t, s, d))
	}
	ids := func(idx ...int) []int64 {
		out := []int64{}
		for _, i := range idx {
			out = append(out, ds[i].ID)
		}
		return out
	}
	tests := []struct {
		name   string
		filter ledger.DeploymentFilter
		want   []int64
	}{
		{"all, newest first", ledger.DeploymentFilter{}, ids(10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
		{"app", ledger.DeploymentFilter{App: "b"}, ids(9, 4)},
		{"env", ledger.DeploymentFilter{Env: "prod"}, ids(9, 8, 7, 6, 1)},
		{"app and env", ledger.DeploymentFilter{App: "a", Env: "dev"}, ids(10, 5, 3, 2, 0)},
		{"one kind", ledger.DeploymentFilter{Kinds: []ferry.DeploymentKind{ferry.DeployPromote}}, ids(9, 7, 1)},
		{"kinds", ledger.DeploymentFilter{App: "a", Kinds: []ferry.DeploymentKind{ferry.DeployRollback, ferry.DeployAutoRollback}}, ids(8, 3)},
		{"states", ledger.DeploymentFilter{States: []ferry.DeploymentState{ferry.DeploymentPending, ferry.DeploymentRolling, ferry.DeploymentVerifying}}, ids(7, 5)},
		{"env and state", ledger.DeploymentFilter{App: "a", Env: "dev", States: []ferry.DeploymentState{ferry.DeploymentSucceeded}}, ids(3, 0)},
		{"env, kinds and states", ledger.DeploymentFilter{Env: "prod", Kinds: []ferry.DeploymentKind{ferry.DeployPromote, ferry.DeployScale},
			States: []ferry.DeploymentState{ferry.DeploymentSucceeded}}, ids(9, 6, 1)},
		{"commit", ledger.DeploymentFilter{Commit: commit(3)}, ids(7, 5)},
		{"digest", ledger.DeploymentFilter{App: "a", Env: "dev", Digest: digest(1)}, ids(3, 0)},
		{"digest succeeded upstream", ledger.DeploymentFilter{App: "a", Env: "dev", Digest: digest(2), States: []ferry.DeploymentState{ferry.DeploymentSucceeded}}, ids()},
		{"release", ledger.DeploymentFilter{App: "a", Release: "RC20250314_1509"}, ids(8, 6, 1)},
		{"before", ledger.DeploymentFilter{BeforeID: ds[3].ID}, ids(2, 1, 0)},
		{"limit", ledger.DeploymentFilter{Limit: 2}, ids(10, 9)},
		{"before and limit", ledger.DeploymentFilter{App: "a", Env: "prod", BeforeID: ds[8].ID, Limit: 2}, ids(7, 6)},
		{"no match", ledger.DeploymentFilter{App: "c"}, ids()},
		{"unknown kind", ledger.DeploymentFilter{Kinds: []ferry.DeploymentKind{"teleport"}}, ids()},
		{"unknown state", ledger.DeploymentFilter{States: []ferry.DeploymentState{"exploded"}}, ids()},
	}
	for _, tt := range tests {
		got, err := s.Deployments(ctx, tt.filter)
		if err != nil {
			t.Errorf("Deployments(%s) = %v", tt.name, err)
			continue
		}
		if got == nil {
			t.Errorf("Deployments(%s) = nil, want an empty slice", tt.name)
		}
		if !slices.Equal(deploymentIDs(got), tt.want) {
			t.Errorf("Deployments(%s) = %v, want %v", tt.name, deploymentIDs(got), tt.want)
		}
	}

	// Every field comes back in lists too.
	got, err := s.Deployments(ctx, ledger.DeploymentFilter{Env: "prod", Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("Deployments(prod, limit 1) = %v, %v", got, err)
	}
	same(t, "Deployments(prod, limit 1)[0]", got[0], utcDeployment(ds[9]))

	// Paging with BeforeID visits every deployment once, newest first.
	var paged []int64
	f := ledger.DeploymentFilter{Limit: 4}
	for range len(ds) {
		page, err := s.Deployments(ctx, f)
		if err != nil {
			t.Fatalf("Deployments(%+v) = %v", f, err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, deploymentIDs(page)...)
		f.BeforeID = page[len(page)-1].ID
	}
	if want := ids(10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0); !slices.Equal(paged, want) {
		t.Errorf("paging by 4 = %v, want %v", paged, want)
	}
}

func testUpdateDeployment(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	b := mustCreate(t, s, newBuild("app", 1))
	d := newDeployment("app", "prod", 1)
	d.BuildID = b.ID
	mustDeploy(t, s, d)

	upd := *d
	upd.State = ferry.DeploymentVerifying
	upd.Error = "first check failed, retrying"
	upd.Reason = "a better reason"
	upd.Replicas = 5
	upd.Release = "RC20250314_1509"
	upd.StartedAt = at(2 * time.Second)
	upd.FinishedAt = at(90 * time.Second)
	upd.Previous = digest(0)
	// Keys and history do not change.
	upd.App, upd.Env, upd.Kind, upd.BuildID = "changed", "changed", ferry.DeployRollback, 0
	upd.Commit, upd.Digest, upd.Actor, upd.CreatedAt = commit(99), digest(99), "changed", at(time.Hour)
	if err := s.UpdateDeployment(ctx, &upd); err != nil {
		t.Fatalf("UpdateDeployment = %v", err)
	}
	want := *d
	want.State, want.Error, want.Reason, want.Replicas = upd.State, upd.Error, upd.Reason, upd.Replicas
	want.Release, want.StartedAt, want.FinishedAt, want.Previous = upd.Release, upd.StartedAt, upd.FinishedAt, upd.Previous
	got := mustGetDeployment(t, s, d.ID)
	same(t, "Deployment after UpdateDeployment", got, utcDeployment(&want))

	// Zero times and empty text clear what was stored.
	upd2 := *got
	upd2.StartedAt, upd2.FinishedAt, upd2.Previous, upd2.Error = time.Time{}, time.Time{}, "", ""
	if err := s.UpdateDeployment(ctx, &upd2); err != nil {
		t.Fatalf("UpdateDeployment(zero times) = %v", err)
	}
	got = mustGetDeployment(t, s, d.ID)
	same(t, "Deployment after clearing", got, &upd2)

	for _, bad := range []struct {
		name   string
		change func(d *ferry.Deployment)
	}{
		{"unknown state", func(d *ferry.Deployment) { d.State = "exploded" }},
		{"no state", func(d *ferry.Deployment) { d.State = "" }},
		{"bad previous digest", func(d *ferry.Deployment) { d.Previous = "sha256:abc" }},
		{"negative replicas", func(d *ferry.Deployment) { d.Replicas = -2 }},
	} {
		c := *got
		bad.change(&c)
		wantCode(t, "UpdateDeployment("+bad.name+")", s.UpdateDeployment(ctx, &c), ferry.EINVALID)
	}
	same(t, "Deployment after refused updates", mustGetDeployment(t, s, d.ID), got)
	missing := *got
	missing.ID = d.ID + 1000
	wantCode(t, "UpdateDeployment(missing)", s.UpdateDeployment(ctx, &missing), ferry.ENOTFOUND)
}

// testCurrent: what an environment runs is its newest succeeded deployment;
// newer ones that failed, were rolled back or are still going are passed
// over, and each app and environment has its own.
func testCurrent(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	_, err := s.Current(ctx, "app", "dev")
	wantCode(t, "Current(app, dev) of an empty ledger", err, ferry.ENOTFOUND)

	deploy := func(app, env string, i int, state ferry.DeploymentState) *ferry.Deployment {
		d := newDeployment(app, env, i)
		d.State = state
		return mustDeploy(t, s, d)
	}
	deploy("app", "dev", 1, ferry.DeploymentPending)
	_, err = s.Current(ctx, "app", "dev")
	wantCode(t, "Current(app, dev) with only a pending deployment", err, ferry.ENOTFOUND)

	dev1 := deploy("app", "dev", 2, ferry.DeploymentSucceeded)
	prod1 := deploy("app", "prod", 2, ferry.DeploymentSucceeded)
	dev2 := deploy("app", "dev", 3, ferry.DeploymentSucceeded)
	other := deploy("other", "dev", 9, ferry.DeploymentSucceeded)
	deploy("app", "dev", 4, ferry.DeploymentFailed)
	deploy("app", "dev", 5, ferry.DeploymentRolledBack)
	deploy("app", "prod", 3, ferry.DeploymentFailed)
	deploy("app", "dev", 6, ferry.DeploymentSuperseded)
	rolling := deploy("app", "dev", 7, ferry.DeploymentRolling)

	tests := []struct {
		app, env string
		want     *ferry.Deployment // nil: ENOTFOUND
	}{
		{"app", "dev", dev2},
		{"app", "prod", prod1},
		{"other", "dev", other},
		{"other", "prod", nil},
		{"app", "staging", nil},
		{"nope", "dev", nil},
	}
	for _, tt := range tests {
		got, err := s.Current(ctx, tt.app, tt.env)
		what := fmt.Sprintf("Current(%s, %s)", tt.app, tt.env)
		if tt.want == nil {
			wantCode(t, what, err, ferry.ENOTFOUND)
			continue
		}
		if err != nil {
			t.Errorf("%s = %v, want deployment %d", what, err, tt.want.ID)
			continue
		}
		same(t, what, got, utcDeployment(tt.want))
	}
	if dev1.ID >= dev2.ID {
		t.Fatalf("IDs %d, %d are not increasing", dev1.ID, dev2.ID)
	}

	// The rollout in progress becomes current when it succeeds.
	if err := s.TransitionDeployment(ctx, rolling.ID, ferry.DeploymentRolling, ferry.DeploymentSucceeded, "", at(time.Hour)); err != nil {
		t.Fatalf("TransitionDeployment(rolling→succeeded) = %v", err)
	}
	got, err := s.Current(ctx, "app", "dev")
	if err != nil || got.ID != rolling.ID || got.State != ferry.DeploymentSucceeded {
		t.Errorf("Current(app, dev) after the rollout succeeded = %v, %v, want deployment %d succeeded", got, err, rolling.ID)
	}
}

func testTransitionDeployment(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	d := mustDeploy(t, s, newDeployment("app", "dev", 1))
	check := func(what string, state ferry.DeploymentState, errMsg string, started, finished time.Time) {
		t.Helper()
		got := mustGetDeployment(t, s, d.ID)
		if got.State != state || got.Error != errMsg || !got.StartedAt.Equal(started) || !got.FinishedAt.Equal(finished) {
			t.Errorf("%s: deployment is %s %q started %v finished %v, want %s %q started %v finished %v",
				what, got.State, got.Error, got.StartedAt, got.FinishedAt, state, errMsg, started, finished)
		}
		// Only state, error and times change.
		want := utcDeployment(d)
		want.State, want.Error, want.StartedAt, want.FinishedAt = got.State, got.Error, got.StartedAt, got.FinishedAt
		same(t, what+": deployment", got, want)
	}
	start, end := at(10*time.Second), at(70*time.Second)

	if err := s.TransitionDeployment(ctx, d.ID, ferry.DeploymentPending, ferry.DeploymentRolling, "", start); err != nil {
		t.Fatalf("TransitionDeployment(pending→rolling) = %v", err)
	}
	check("pending→rolling", ferry.DeploymentRolling, "", start, time.Time{})

	err := s.TransitionDeployment(ctx, d.ID, ferry.DeploymentPending, ferry.DeploymentRolling, "", at(time.Hour))
	wantCode(t, "TransitionDeployment(pending→rolling) again", err, ferry.ECONFLICT)
	check("after lost transition", ferry.DeploymentRolling, "", start, time.Time{})

	// Back to pending (ferry restarted mid-rollout) clears the times.
	if err := s.TransitionDeployment(ctx, d.ID, ferry.DeploymentRolling, ferry.DeploymentPending, "interrupted", time.Time{}); err != nil {
		t.Fatalf("TransitionDeployment(rolling→pending) = %v", err)
	}
	check("rolling→pending", ferry.DeploymentPending, "interrupted", time.Time{}, time.Time{})
	if err := s.TransitionDeployment(ctx, d.ID, ferry.DeploymentPending, ferry.DeploymentRolling, "", start); err != nil {
		t.Fatalf("TransitionDeployment(pending→rolling) = %v", err)
	}
	check("pending→rolling again", ferry.DeploymentRolling, "", start, time.Time{})

	// Verifying keeps the start; it needs no time.
	if err := s.TransitionDeployment(ctx, d.ID, ferry.DeploymentRolling, ferry.DeploymentVerifying, "", time.Time{}); err != nil {
		t.Fatalf("TransitionDeployment(rolling→verifying) = %v", err)
	}
	check("rolling→verifying", ferry.DeploymentVerifying, "", start, time.Time{})

	wantCode(t, "TransitionDeployment(to a final state without a time)",
		s.TransitionDeployment(ctx, d.ID, ferry.DeploymentVerifying, ferry.DeploymentFailed, "x", time.Time{}), ferry.EINVALID)
	wantCode(t, "TransitionDeployment(unknown to)",
		s.TransitionDeployment(ctx, d.ID, ferry.DeploymentVerifying, "exploded", "", end), ferry.EINVALID)
	wantCode(t, "TransitionDeployment(unknown from)",
		s.TransitionDeployment(ctx, d.ID, "", ferry.DeploymentSucceeded, "", end), ferry.EINVALID)
	check("after refused transitions", ferry.DeploymentVerifying, "", start, time.Time{})

	if err := s.TransitionDeployment(ctx, d.ID, ferry.DeploymentVerifying, ferry.DeploymentRolledBack, "verification: GET /health = 503 \x00", end); err != nil {
		t.Fatalf("TransitionDeployment(verifying→rolled-back) = %v", err)
	}
	check("verifying→rolled-back", ferry.DeploymentRolledBack, "verification: GET /health = 503 \uFFFD", start, end)

	// A final state is never left, whatever the row holds.
	for _, to := range []ferry.DeploymentState{ferry.DeploymentPending, ferry.DeploymentRolling, ferry.DeploymentFailed} {
		wantCode(t, fmt.Sprintf("TransitionDeployment(rolled-back→%s)", to),
			s.TransitionDeployment(ctx, d.ID, ferry.DeploymentRolledBack, to, "", at(time.Hour)), ferry.EINVALID)
	}
	wantCode(t, "TransitionDeployment(verifying→succeeded) of a rolled-back deployment",
		s.TransitionDeployment(ctx, d.ID, ferry.DeploymentVerifying, ferry.DeploymentSucceeded, "", at(time.Hour)), ferry.ECONFLICT)
	check("after refused transitions out of rolled-back", ferry.DeploymentRolledBack, "verification: GET /health = 503 \uFFFD", start, end)

	// A pending deployment superseded before it started finishes unstarted.
	p := mustDeploy(t, s, newDeployment("app", "dev", 2))
	if err := s.TransitionDeployment(ctx, p.ID, ferry.DeploymentPending, ferry.DeploymentSuperseded, "superseded by a newer build", end); err != nil {
		t.Fatalf("TransitionDeployment(pending→superseded) = %v", err)
	}
	got := mustGetDeployment(t, s, p.ID)
	if got.State != ferry.DeploymentSuperseded || !got.StartedAt.IsZero() || !got.FinishedAt.Equal(end) || got.Error != "superseded by a newer build" {
		t.Errorf("superseded deployment is %s %q started %v finished %v, want superseded, not started, finished %v",
			got.State, got.Error, got.StartedAt, got.FinishedAt, end)
	}
}

// testDeploymentTransitionRace has eight goroutines, on two stores of one
// database, race to move the same pending deployment: half start it, half
// supersede it (as a new request and the environment's loop would). Exactly
// one may win, and the row holds what the winner wrote.
func testDeploymentTransitionRace(t *testing.T, open OpenFunc) {
	stores := []ledger.Store{mustOpen(t, open), mustOpen(t, open)}
	ctx := t.Context()
	const racers = 8
	for round := range 5 {
		d := mustDeploy(t, stores[0], newDeployment("app", "dev", round))
		targets := make([]ferry.DeploymentState, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			targets[i] = ferry.DeploymentRolling
			if i%2 == 1 {
				targets[i] = ferry.DeploymentSuperseded
			}
			wg.Go(func() {
				<-start
				errs[i] = stores[i%2].TransitionDeployment(ctx, d.ID, ferry.DeploymentPending, targets[i],
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
				t.Errorf("round %d: racer %d: TransitionDeployment = %v, want nil or conflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no racer won", round)
		}
		got, err := stores[1].Deployment(ctx, d.ID)
		if err != nil {
			t.Fatalf("Deployment(%d) = %v", d.ID, err)
		}
		when := at(time.Duration(winner) * time.Second)
		wantStarted, wantFinished := when, time.Time{}
		if targets[winner] == ferry.DeploymentSuperseded {
			wantStarted, wantFinished = time.Time{}, when
		}
		if want := fmt.Sprintf("racer %d", winner); got.State != targets[winner] || got.Error != want ||
			!got.StartedAt.Equal(wantStarted) || !got.FinishedAt.Equal(wantFinished) {
			t.Errorf("round %d: deployment is %s %q started %v finished %v, want %s %q started %v finished %v as set by the winner",
				round, got.State, got.Error, got.StartedAt, got.FinishedAt, targets[winner], want, wantStarted, wantFinished)
		}
	}
}
