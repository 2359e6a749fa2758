package ledgertest

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// oddKeys are keys no engine may take: PostgreSQL cannot compare them,
// SQLite would; both must refuse them the same way.
var oddKeys = []struct{ name, value, says string }{
	{"NUL", "RC\x00x", "contains a NUL byte"},
	{"invalid UTF-8", "ma\xffster", "is not valid UTF-8"},
	{"lone continuation byte", "\x80", "is not valid UTF-8"},
	{"overlong", strings.Repeat("x", ledger.MaxRef+1), "allowed"},
}

// testOddKeys: every lookup, filter and write that takes a key refuses an
// odd one with EINVALID and a message naming what it is, on every engine,
// and the ledger holds nothing more afterwards.
func testOddKeys(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	b := mustCreate(t, s, newBuild("app", 1))
	mustDeploy(t, s, newDeployment("app", "prod", 1))

	for _, odd := range oddKeys {
		v := odd.value
		calls := []struct {
			name, what string // what: the name the message must start with
			call       func() error
		}{
			{"BuildByCommit(app)", "app", func() error { _, err := s.BuildByCommit(ctx, v, b.Commit); return err }},
			{"BuildByCommit(commit)", "commit", func() error { _, err := s.BuildByCommit(ctx, "app", v); return err }},
			{"Builds(App)", "app", func() error { _, err := s.Builds(ctx, ledger.BuildFilter{App: v}); return err }},
			{"Builds(Branch)", "branch", func() error { _, err := s.Builds(ctx, ledger.BuildFilter{Branch: v}); return err }},
			{"Builds(States)", "build state", func() error {
				_, err := s.Builds(ctx, ledger.BuildFilter{States: []ferry.BuildState{ferry.BuildState(v)}})
				return err
			}},
			{"Deployments(Env)", "environment", func() error { _, err := s.Deployments(ctx, ledger.DeploymentFilter{Env: v}); return err }},
			{"Deployments(Commit)", "commit", func() error { _, err := s.Deployments(ctx, ledger.DeploymentFilter{Commit: v}); return err }},
			{"Deployments(Digest)", "digest", func() error { _, err := s.Deployments(ctx, ledger.DeploymentFilter{Digest: v}); return err }},
			{"Deployments(Release)", "release", func() error { _, err := s.Deployments(ctx, ledger.DeploymentFilter{Release: v}); return err }},
			{"Deployments(Kinds)", "deployment kind", func() error {
				_, err := s.Deployments(ctx, ledger.DeploymentFilter{Kinds: []ferry.DeploymentKind{ferry.DeploymentKind(v)}})
				return err
			}},
			{"Current(env)", "environment", func() error { _, err := s.Current(ctx, "app", v); return err }},
			{"Events(Env)", "environment", func() error { _, err := s.Events(ctx, ledger.EventFilter{Env: v}); return err }},
			{"Events(Kind)", "event kind", func() error { _, err := s.Events(ctx, ledger.EventFilter{Kind: v}); return err }},
			{"RevokeToken", "token name", func() error { return s.RevokeToken(ctx, v, t0) }},
			{"LockOf", "environment", func() error { _, err := s.LockOf(ctx, "app", v); return err }},
			{"Unlock", "environment", func() error { _, err := s.Unlock(ctx, "app", v); return err }},
			{"Locks", "app", func() error { _, err := s.Locks(ctx, v); return err }},
			{"Quarantined", "commit", func() error { _, err := s.Quarantined(ctx, "app", v); return err }},
			{"Quarantines", "app", func() error { _, err := s.Quarantines(ctx, v); return err }},
			{"CreateBuild(Branch)", "branch", func() error {
				nb := newBuild("app", 2)
				nb.Branch = v
				return s.CreateBuild(ctx, nb)
			}},
			{"CreateDeployment(Env)", "environment", func() error { return s.CreateDeployment(ctx, newDeployment("app", v, 2)) }},
			{"CreateDeployment(Release)", "release", func() error {
				d := newDeployment("app", "prod", 2)
				d.Release = v
				return s.CreateDeployment(ctx, d)
			}},
			{"AddEvent(Env)", "event environment", func() error {
				return s.AddEvent(ctx, &ferry.Event{Kind: "release.promote", Env: v, Time: t0})
			}},
			{"SaveStep(Name)", "step name", func() error {
				return s.SaveStep(ctx, ferry.Step{BuildID: b.ID, Name: v, State: ferry.StepPending})
			}},
			{"Lock(Env)", "environment", func() error {
				return s.Lock(ctx, &ferry.Lock{App: "app", Env: v, Reason: "audit", Actor: "ada", CreatedAt: t0})
			}},
			{"AddQuarantine(Release)", "release", func() error {
				return s.AddQuarantine(ctx, &ferry.Quarantine{App: "app", Commit: b.Commit, Release: v, Reason: "bad", Actor: "ada", CreatedAt: t0})
			}},
			{"AddDelivery(id)", "webhook delivery id", func() error { _, err := s.AddDelivery(ctx, "github", v, t0); return err }},
		}
		for _, c := range calls {
			what := fmt.Sprintf("%s with %s", c.name, odd.name)
			err := c.call()
			wantCode(t, what, err, ferry.EINVALID)
			if msg := ferry.ErrorMessage(err); !strings.HasPrefix(msg, c.what+" ") || !strings.Contains(msg, odd.says) {
				t.Errorf("%s: message %q, want it to start with %q and say %q", what, msg, c.what, odd.says)
			}
		}
	}

	builds, err := s.Builds(ctx, ledger.BuildFilter{})
	if err != nil || len(builds) != 1 {
		t.Errorf("Builds() after refused writes = %v, %v, want the one build", buildIDs(builds), err)
	}
	ds, err := s.Deployments(ctx, ledger.DeploymentFilter{})
	if err != nil || len(ds) != 1 {
		t.Errorf("Deployments() after refused writes = %v, %v, want the one deployment", deploymentIDs(ds), err)
	}
	events, err := s.Events(ctx, ledger.EventFilter{})
	if err != nil || len(events) != 0 {
		t.Errorf("Events() after refused writes = %v, %v, want none", events, err)
	}
	// A key at its limit is taken.
	long := newBuild("app", 3)
	long.Branch = strings.Repeat("b", ledger.MaxRef)
	mustCreate(t, s, long)
}

// testTextLimits: free text over its limit is cut on a UTF-8 boundary and
// marked, the same on every engine, both in what is written back and what
// is read; keys over theirs are refused whole.
func testTextLimits(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	huge := strings.Repeat("é", 50<<10) // 100 KiB, two bytes a rune
	capped := func(what, got string, most int) {
		t.Helper()
		if len(got) > most || !strings.HasSuffix(got, ledger.TruncatedMark) || !utf8.ValidString(got) ||
			!strings.HasPrefix(huge, strings.TrimSuffix(got, ledger.TruncatedMark)) || len(got) < most-utf8.UTFMax {
			t.Errorf("%s is %d bytes ending %q, want the text's start cut to at most %d bytes, ending %q", what, len(got), got[max(0, len(got)-20):], most, ledger.TruncatedMark)
		}
	}

	b := newBuild("app", 1)
	b.Author, b.Subject, b.Reason = huge, huge, huge
	mustCreate(t, s, b)
	got, err := s.Build(ctx, b.ID)
	if err != nil {
		t.Fatalf("Build = %v", err)
	}
	for _, f := range []struct {
		name          string
		written, read string
		most          int
	}{
		{"build author", b.Author, got.Author, ledger.MaxPerson},
		{"build subject", b.Subject, got.Subject, ledger.MaxSubject},
		{"build reason", b.Reason, got.Reason, ledger.MaxText},
	} {
		capped(f.name+" written back", f.written, f.most)
		capped(f.name+" read", f.read, f.most)
	}

	// A webhook's 100 KiB pusher name, as the event that names it.
	e := &ferry.Event{Kind: "webhook.push", Time: t0, Actor: huge, Message: "github push to master by " + huge}
	if err := s.AddEvent(ctx, e); err != nil {
		t.Fatalf("AddEvent = %v", err)
	}
	events, err := s.Events(ctx, ledger.EventFilter{})
	if err != nil || len(events) != 1 {
		t.Fatalf("Events = %v, %v, want one", events, err)
	}
	capped("event actor", events[0].Actor, ledger.MaxPerson)
	if m := events[0].Message; len(m) > ledger.MaxText || !strings.HasPrefix(m, "github push to master by éé") || !strings.HasSuffix(m, ledger.TruncatedMark) {
		t.Errorf("event message is %d bytes, want at most %d starting with what it said, ending %q", len(m), ledger.MaxText, ledger.TruncatedMark)
	}

	d := newDeployment("app", "prod", 1)
	d.Actor, d.Reason = huge, huge
	mustDeploy(t, s, d)
	if err := s.TransitionDeployment(ctx, d.ID, d.State, ferry.DeploymentFailed, huge, at(time.Minute)); err != nil {
		t.Fatalf("TransitionDeployment = %v", err)
	}
	gd := mustGetDeployment(t, s, d.ID)
	capped("deployment actor", gd.Actor, ledger.MaxPerson)
	capped("deployment reason", gd.Reason, ledger.MaxText)
	capped("deployment error", gd.Error, ledger.MaxText)

	l := &ferry.Lock{App: "app", Env: "prod", Reason: huge, Actor: huge, CreatedAt: t0}
	if err := s.Lock(ctx, l); err != nil {
		t.Fatalf("Lock = %v", err)
	}
	gl, err := s.LockOf(ctx, "app", "prod")
	if err != nil {
		t.Fatalf("LockOf = %v", err)
	}
	capped("lock reason", gl.Reason, ledger.MaxText)
	capped("lock actor", gl.Actor, ledger.MaxPerson)

	lines := []ferry.LogLine{{Step: "test", Text: strings.Repeat("é", ledger.MaxLogLine), Time: t0}}
	if err := s.AppendLog(ctx, b.ID, lines); err != nil {
		t.Fatalf("AppendLog = %v", err)
	}
	gotLines, err := s.Logs(ctx, b.ID, 0, 0)
	if err != nil || len(gotLines) != 1 {
		t.Fatalf("Logs = %v, %v, want one line", gotLines, err)
	}
	if n := len(gotLines[0].Text); n > ledger.MaxLogLine || !strings.HasSuffix(gotLines[0].Text, ledger.TruncatedMark) {
		t.Errorf("a log line of %d bytes is stored as %d bytes, want it cut to at most %d and marked", 2*ledger.MaxLogLine, n, ledger.MaxLogLine)
	}

	// Keys are never cut: one byte over its limit is refused.
	for _, k := range []struct {
		name string
		call func() error
	}{
		{"CreateBuild(App)", func() error { return s.CreateBuild(ctx, newBuild(strings.Repeat("a", ledger.MaxName+1), 2)) }},
		{"CreateDeployment(Env)", func() error {
			return s.CreateDeployment(ctx, newDeployment("app", strings.Repeat("e", ledger.MaxName+1), 2))
		}},
		{"AddEvent(Kind)", func() error {
			return s.AddEvent(ctx, &ferry.Event{Kind: strings.Repeat("k", ledger.MaxName+1), Time: t0})
		}},
	} {
		wantCode(t, k.name+" one byte over the limit", k.call(), ferry.EINVALID)
	}
}

// testDeliveries: a webhook delivery is new once per (provider, id), also
// from another store on the same database and after reopening, and under
// concurrent arrivals exactly one is new; a forgotten one is new again;
// deliveries older than the retention are pruned as new ones arrive.
func testDeliveries(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	add := func(s ledger.Store, provider, id string, when time.Time, want bool) {
		t.Helper()
		got, err := s.AddDelivery(ctx, provider, id, when)
		if err != nil || got != want {
			t.Errorf("AddDelivery(%s, %s, %s) = %v, %v, want %v", provider, id, when.UTC().Format(time.DateTime), got, err, want)
		}
	}
	const id = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	add(s, "github", id, t0, true)
	add(s, "github", id, at(time.Second), false)
	add(s, "gitea", id, at(time.Second), true) // another sender's ids are its own
	add(s, "github", "another", at(time.Second), true)

	other := mustOpen(t, open) // another server on the same ledger
	add(other, "github", id, at(time.Minute), false)

	if err := s.ForgetDelivery(ctx, "github", id); err != nil {
		t.Fatalf("ForgetDelivery = %v", err)
	}
	if err := s.ForgetDelivery(ctx, "github", "never-seen"); err != nil {
		t.Errorf("ForgetDelivery(never seen) = %v, want nil", err)
	}
	add(other, "github", id, at(time.Minute), true)

	// Twenty at once: one is new.
	var wg sync.WaitGroup
	var fresh, failed atomic.Int32
	for i := range 20 {
		st := s
		if i%2 == 1 {
			st = other
		}
		wg.Go(func() {
			ok, err := st.AddDelivery(ctx, "gitlab", "burst", at(time.Hour))
			if err != nil {
				failed.Add(1)
			}
			if ok {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 || failed.Load() != 0 {
		t.Errorf("20 concurrent AddDelivery of one delivery: %d new, %d failed, want 1 new and none failed", fresh.Load(), failed.Load())
	}

	// Within the retention a delivery is remembered; past it, pruned.
	late := at(time.Minute + ledger.DeliveryRetention - time.Second)
	add(s, "github", id, late, false)
	add(s, "github", "trigger-prune", at(time.Hour+ledger.DeliveryRetention+time.Second), true)
	add(s, "github", id, at(time.Hour+ledger.DeliveryRetention+2*time.Second), true)
	add(s, "gitlab", "burst", at(time.Hour+ledger.DeliveryRetention+2*time.Second), true)

	for _, tt := range []struct{ name, provider, id string }{
		{"no provider", "", id},
		{"no id", "github", ""},
	} {
		_, err := s.AddDelivery(ctx, tt.provider, tt.id, t0)
		wantCode(t, "AddDelivery("+tt.name+")", err, ferry.EINVALID)
	}
	_, err := s.AddDelivery(ctx, "github", "no-time", time.Time{})
	wantCode(t, "AddDelivery(no time)", err, ferry.EINVALID)
}
