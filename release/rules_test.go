package release

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// The rules on facts alone: no git, no ledger.

// sha is a fake commit id made of one repeated hex digit.
func sha(c string) string { return strings.Repeat(c, 40) }

func TestClassify(t *testing.T) {
	a, b, c, x := sha("a"), sha("b"), sha("c"), sha("e")
	known := []Known{{Release: "RC20240302_0900", Commit: x}, {Release: "RC20240301_1200_2", Commit: a}, {Release: "RC20240301_1200", Commit: a}}
	// onMain: New is a commit on master's history; ff: and a fast-forward.
	onMain := MoveFacts{Env: "prod", Mainline: "master", HasMainline: true, Exists: true, OnMainline: true, Known: known}
	ff := onMain
	ff.FastForward = true
	off := onMain // a commit off master
	off.OnMainline = false
	offFF := off
	offFF.FastForward = true
	noMain := MoveFacts{Env: "prod", Mainline: "trunk", Exists: true, FastForward: true, Known: known}
	missing := MoveFacts{Env: "prod", Mainline: "master", HasMainline: true, Known: known}
	type want struct {
		allowed bool
		kind    Kind
		release string
		rule    Rule
		reason  string // a fragment of the reason
	}
	for _, tc := range []struct {
		name string
		move Move
		f    MoveFacts
		want want
	}{
		{"promote: fast-forward along master", Move{Old: a, New: b}, ff, want{true, Promote, "", "", "fast-forward of aaaaaaaaaaaa to bbbbbbbbbbbb along master"}},
		{"unchanged", Move{Old: b, New: b}, MoveFacts{}, want{true, Unchanged, "", "", "release stays at bbbbbbbbbbbb"}},
		{"rollback: back to a known release", Move{Old: b, New: a}, onMain, want{true, Rollback, "RC20240301_1200_2", "", "release to aaaaaaaaaaaa, the commit of release RC20240301_1200_2"}},
		{"rollback: a known release off master", Move{Old: b, New: x}, off, want{true, Rollback, "RC20240302_0900", "", "the commit of release RC20240302_0900"}},
		{"rollback: forward onto a known release", Move{Old: c, New: a}, ff, want{true, Rollback, "RC20240301_1200_2", "", "the commit of release"}},
		{"rollback without a mainline", Move{Old: b, New: a}, noMain, want{true, Rollback, "RC20240301_1200_2", "", ""}},
		{"create on master", Move{New: b}, onMain, want{true, Create, "", "", "release created at bbbbbbbbbbbb, on master's history"}},
		{"create on master at a known release", Move{Old: Zero, New: a}, onMain, want{true, Create, "", "", "on master's history"}},
		{"create at a known release off master", Move{Old: Zero, New: x}, off, want{true, Create, "RC20240302_0900", "", "the commit of release RC20240302_0900"}},
		{"branch named in messages", Move{Branch: "stable", Old: b, New: b}, MoveFacts{}, want{true, Unchanged, "", "", "stable stays"}},
		{"delete", Move{Old: b, New: Zero}, MoveFacts{}, want{false, "", "", RuleNoDelete, "release may not be deleted"}},
		{"unknown commit", Move{Old: b, New: c}, missing, want{false, "", "", RuleCommit, "cccccccccccc is not a commit of this repository"}},
		{"bad ids", Move{Old: "abc", New: b}, onMain, want{false, "", "", RuleCommit, "not a move between two commit ids"}},
		{"back to an unknown commit of master", Move{Old: b, New: c}, onMain, want{false, "", "", RuleForward, "cccccccccccc is not a fast-forward of bbbbbbbbbbbb and not a known release of prod"}},
		{"fast-forward off master", Move{Old: b, New: c}, offFF, want{false, "", "", RuleMainline, "cccccccccccc is not on master's history (only commits of master are released) and not a known release of prod"}},
		{"sideways", Move{Old: b, New: c}, off, want{false, "", "", RuleForward, "cccccccccccc is not a fast-forward of bbbbbbbbbbbb, not on master's history, and not a known release of prod"}},
		{"create off master", Move{New: c}, off, want{false, "", "", RuleMainline, "cccccccccccc is not on master's history and not a known release of prod"}},
		{"no mainline: forward refused", Move{Old: b, New: c}, noMain, want{false, "", "", RuleMainline, "not on trunk's history (trunk does not exist)"}},
		{"no environment named", Move{Old: b, New: c}, MoveFacts{Mainline: "master", HasMainline: true, Exists: true, OnMainline: true}, want{false, "", "", RuleForward, "not a known release of the environment"}},
		{"a forged release is not known", Move{Old: b, New: c}, func() MoveFacts { f := onMain; f.Known = nil; return f }(), want{false, "", "", RuleForward, "not a known release"}},
	} {
		got := Classify(tc.move, tc.f)
		w := tc.want
		if got.Allowed != w.allowed || got.Kind != w.kind || got.Release != w.release || got.Rule != w.rule || !strings.Contains(got.Reason, w.reason) {
			t.Errorf("%s: Classify(%.7s → %.7s) = %+v, want allowed=%v kind=%q release=%q rule=%q reason containing %q",
				tc.name, tc.move.Old, tc.move.New, got, w.allowed, w.kind, w.release, w.rule, w.reason)
		}
	}
}

func TestClassifyTag(t *testing.T) {
	obj, c := sha("d"), sha("c")
	known := []Known{{Release: "RC20240401_1000", Commit: c}, {Release: "RC20240301_0900", Commit: sha("a")}}
	on := TagFacts{Env: "prod", Mainline: "master", HasMainline: true, Exists: true, OnMainline: true, Known: known}
	for _, tc := range []struct {
		name    string
		move    TagMove
		f       TagFacts
		allowed bool
		reason  string
	}{
		{"new annotated tag on master", TagMove{Name: "RC20240401_1000", New: obj, Annotated: true, Commit: c}, on, true, "release tag RC20240401_1000 on cccccccccccc"},
		{"unchanged", TagMove{Name: "RC20240401_1000", Old: obj, New: obj}, TagFacts{}, true, "stays"},
		{"not a release tag", TagMove{Name: "v1.2.3", Old: obj, New: Zero}, TagFacts{}, true, "not a release tag"},
		{"deleted", TagMove{Name: "RC20240401_1000", Old: obj, New: Zero}, TagFacts{}, false, "may not be deleted"},
		{"deleted, empty new", TagMove{Name: "RC20240401_1000", Old: obj}, TagFacts{}, false, "may not be deleted"},
		{"moved", TagMove{Name: "RC20240401_1000", Old: obj, New: sha("e"), Annotated: true, Commit: c}, on, false, "exists and never moves"},
		{"lightweight", TagMove{Name: "RC20240401_1000", New: c, Commit: c}, on, false, "must be an annotated tag"},
		{"names no commit", TagMove{Name: "RC20240401_1000", New: obj, Annotated: true}, on, false, "must name a commit"},
		{"no mainline", TagMove{Name: "RC20240401_1000", New: obj, Annotated: true, Commit: c}, TagFacts{Mainline: "master"}, false, "master does not exist"},
		{"unknown commit", TagMove{Name: "RC20240401_1000", New: obj, Annotated: true, Commit: c}, TagFacts{Mainline: "master", HasMainline: true}, false, "not a commit of this repository"},
		{"off master", TagMove{Name: "RC20240401_1000", New: obj, Annotated: true, Commit: c}, TagFacts{Mainline: "master", HasMainline: true, Exists: true}, false, "not on master's history: only commits of master are released"},
		// The next release's name, made by hand before ferry promotes.
		{"no such release in the ledger", TagMove{Name: "RC20990101_0003", New: obj, Annotated: true, Commit: c}, on, false, "release tag RC20990101_0003 is not a release of prod in ferry's ledger"},
		{"a release's name on another commit", TagMove{Name: "RC20240301_0900", New: obj, Annotated: true, Commit: c}, on, false, "names cccccccccccc, but release RC20240301_0900 of prod ran aaaaaaaaaaaa"},
		{"no releases known", TagMove{Name: "RC20240401_1000", New: obj, Annotated: true, Commit: c}, TagFacts{Mainline: "master", HasMainline: true, Exists: true, OnMainline: true}, false, "not a release of the environment in ferry's ledger"},
	} {
		got := ClassifyTag(tc.move, tc.f)
		if got.Allowed != tc.allowed || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: ClassifyTag(%+v) = %+v, want allowed=%v, reason containing %q", tc.name, tc.move, got, tc.allowed, tc.reason)
		}
	}
}

func TestClassifyEnvTag(t *testing.T) {
	a, b := sha("a"), sha("b")
	for _, tc := range []struct {
		name    string
		move    TagMove
		runs    string
		allowed bool
		reason  string
	}{
		{"set to what runs", TagMove{Name: "env/prod", Old: b, New: a, Commit: a}, a, true, "env/prod on aaaaaaaaaaaa, what prod runs"},
		{"created at what runs", TagMove{Name: "env/prod", New: a, Commit: a}, a, true, "what prod runs"},
		{"unchanged", TagMove{Name: "env/prod", Old: a, New: a}, b, true, "stays"},
		{"moved elsewhere", TagMove{Name: "env/prod", Old: a, New: b, Commit: b}, a, false, "env/prod is ferry's: it names what prod runs (aaaaaaaaaaaa), not bbbbbbbbbbbb"},
		{"an annotated tag on another commit", TagMove{Name: "env/prod", New: sha("d"), Annotated: true, Commit: b}, a, false, "not bbbbbbbbbbbb"},
		{"deleted", TagMove{Name: "env/prod", Old: a, New: Zero}, a, false, "env/prod may not be deleted"},
		{"nothing runs", TagMove{Name: "env/prod", New: a, Commit: a}, "", false, "prod runs nothing yet"},
	} {
		got := ClassifyEnvTag(tc.move, "prod", tc.runs)
		if got.Allowed != tc.allowed || !strings.Contains(got.Reason, tc.reason) || !got.Allowed && got.Rule != RuleTag {
			t.Errorf("%s: ClassifyEnvTag(%+v, %.7s) = %+v, want allowed=%v, reason containing %q", tc.name, tc.move, tc.runs, got, tc.allowed, tc.reason)
		}
	}
}

func TestJudgePush(t *testing.T) {
	a, b, c, obj := sha("a"), sha("b"), sha("c"), sha("d")
	prod := ferry.Environment{Name: "prod", Branch: "release", From: "dev"}
	known := []Known{{Release: "RC20240301_1200", Commit: a}}
	ff := MoveFacts{Mainline: "master", HasMainline: true, Exists: true, OnMainline: true, FastForward: true}
	back := MoveFacts{Mainline: "master", HasMainline: true, Exists: true, OnMainline: true}
	locked := func(Move, MoveFacts, Verdict) error {
		return ferry.Errorf(ferry.ECONFLICT, "prod is locked by ada since 2024-03-01 12:00:00 UTC: freeze (ferry unlock prod)")
	}
	var gated []Kind // the kinds Gate was asked about
	record := func(_ Move, _ MoveFacts, v Verdict) error { gated = append(gated, v.Kind); return nil }
	facts := func(gate func(Move, MoveFacts, Verdict) error, inFlight *ferry.Deployment) PushFacts {
		return PushFacts{Env: prod, Known: known, Runs: map[string]string{"prod": a, "dev": b}, InFlight: inFlight, Gate: gate}
	}
	approving := func(f PushFacts) PushFacts {
		f.Env.Approval = &ferry.Approval{Required: 1, Role: ferry.RoleReleaser, Expires: time.Hour}
		return f
	}
	for _, tc := range []struct {
		name    string
		u       PushUpdate
		f       PushFacts
		allowed bool
		rule    Rule
		reason  string
		gated   []Kind
	}{
		{"promote passes its gates", PushUpdate{Ref: "refs/heads/release", Old: a, New: b, Move: ff}, facts(record, nil), true, "", "fast-forward", []Kind{Promote}},
		{"rollback passes its gates", PushUpdate{Ref: "refs/heads/release", Old: b, New: a, Move: back}, facts(record, nil), true, "", "the commit of release RC20240301_1200", []Kind{Rollback}},
		{"a gate refuses with the controller's sentence", PushUpdate{Ref: "refs/heads/release", Old: a, New: b, Move: ff}, facts(locked, nil), false, RuleGate, "prod is locked by ada", nil},
		{"a refused move asks no gate", PushUpdate{Ref: "refs/heads/release", Old: b, New: c, Move: back}, facts(record, nil), false, RuleForward, "not a fast-forward", nil},
		{"unchanged asks no gate", PushUpdate{Ref: "refs/heads/release", Old: b, New: b}, facts(locked, nil), true, "", "stays", nil},
		{"ferry's own move for the deployment it starts", PushUpdate{Ref: "refs/heads/release", Old: a, New: b, Move: ff},
			facts(locked, &ferry.Deployment{ID: 7, Kind: ferry.DeployPromote, Commit: b, Release: "RC20240302_0900"}), true, "", "ferry's own promote of prod to bbbbbbbbbbbb (deployment 7)", nil},
		{"another deployment in flight is no pass", PushUpdate{Ref: "refs/heads/release", Old: a, New: b, Move: ff},
			facts(locked, &ferry.Deployment{ID: 7, Kind: ferry.DeployPromote, Commit: c}), false, RuleGate, "locked", nil},
		{"release tag of a known release", PushUpdate{Ref: "refs/tags/RC20240301_1200", New: obj, Annotated: true, Commit: a, Tag: TagFacts{Mainline: "master", HasMainline: true, Exists: true, OnMainline: true}}, facts(locked, nil), true, "", "release tag RC20240301_1200 on", nil},
		{"forged release tag", PushUpdate{Ref: "refs/tags/RC20990101_0003", New: obj, Annotated: true, Commit: c, Tag: TagFacts{Mainline: "master", HasMainline: true, Exists: true, OnMainline: true}}, facts(record, nil), false, RuleTag, "not a release of prod in ferry's ledger", nil},
		{"env tag to what runs", PushUpdate{Ref: "refs/tags/env/dev", Old: a, New: b, Commit: b}, facts(locked, nil), true, "", "what dev runs", nil},
		{"env tag forged", PushUpdate{Ref: "refs/tags/env/prod", Old: a, New: c, Commit: c}, facts(record, nil), false, RuleTag, "env/prod is ferry's", nil},
		{"env tag of an environment that runs nothing", PushUpdate{Ref: "refs/tags/env/staging", New: c, Commit: c}, facts(record, nil), false, RuleTag, "staging runs nothing yet", nil},
		{"other tags pass", PushUpdate{Ref: "refs/tags/v1.0.0", New: obj, Annotated: true, Commit: c}, facts(locked, nil), true, "", "not a release tag", nil},
		{"other refs pass", PushUpdate{Ref: "refs/notes/commits", Old: a, New: c}, facts(locked, nil), true, "", "not ferry's", nil},
		{"a promotion by push where approval is required", PushUpdate{Ref: "refs/heads/release", Old: a, New: b, Move: ff}, approving(facts(record, nil)), false, RuleGate,
			"prod needs 1 approval(s) (approval: { required: 1, role: releaser, selfApproval: false, expires: 1h0m0s }): a push to release is not released", nil},
		{"a rollback by push where approval is required", PushUpdate{Ref: "refs/heads/release", Old: b, New: a, Move: back}, approving(facts(record, nil)), true, "", "RC20240301_1200", []Kind{Rollback}},
		{"ferry's own move of an approved release", PushUpdate{Ref: "refs/heads/release", Old: a, New: b, Move: ff},
			approving(facts(record, &ferry.Deployment{ID: 8, Kind: ferry.DeployPromote, Commit: b})), true, "", "ferry's own promote", nil},
	} {
		gated = nil
		got := JudgePush(tc.u, tc.f)
		if got.Allowed != tc.allowed || got.Rule != tc.rule || !strings.Contains(got.Reason, tc.reason) || !slices.Equal(gated, tc.gated) {
			t.Errorf("%s: JudgePush = %+v, gates asked %v; want allowed=%v rule=%q reason containing %q, gates asked %v",
				tc.name, got, gated, tc.allowed, tc.rule, tc.reason, tc.gated)
		}
	}
}

func TestKnownReleases(t *testing.T) {
	prod := ferry.Environment{Name: "prod", Branch: "release", From: "dev"}
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	d := func(id int64, env string, state ferry.DeploymentState, release, commit string) *ferry.Deployment {
		return &ferry.Deployment{ID: id, Env: env, State: state, Release: release, Commit: commit, Digest: "sha256:" + commit[:8], BuildID: id * 10, FinishedAt: at.Add(time.Duration(id) * time.Minute)}
	}
	ds := []*ferry.Deployment{ // newest first
		d(7, "prod", ferry.DeploymentSucceeded, "RC2", sha("b")), // a scale of RC2
		d(6, "prod", ferry.DeploymentRolledBack, "RC3", sha("c")),
		d(5, "prod", ferry.DeploymentSucceeded, "RC2", sha("b")),
		d(4, "dev", ferry.DeploymentSucceeded, "RC9", sha("e")),
		d(3, "prod", ferry.DeploymentFailed, "RC4", sha("d")),
		d(2, "prod", ferry.DeploymentSucceeded, "", sha("f")),
		d(1, "prod", ferry.DeploymentSucceeded, "RC1", sha("a")),
	}
	got := KnownReleases(prod, ds)
	want := []Known{
		{Release: "RC2", Commit: sha("b"), Digest: "sha256:bbbbbbbb", BuildID: 70, DeploymentID: 7, FinishedAt: at.Add(7 * time.Minute), Since: 5},
		{Release: "RC1", Commit: sha("a"), Digest: "sha256:aaaaaaaa", BuildID: 10, DeploymentID: 1, FinishedAt: at.Add(time.Minute), Since: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("KnownReleases(prod) = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("KnownReleases(prod)[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := KnownReleases(ferry.Environment{Name: "dev", Branch: "master"}, ds); got == nil || len(got) != 0 {
		t.Errorf("KnownReleases(dev) = %#v, want an empty list: dev is not gated", got)
	}
	if k, ok := ReleaseOf(got, sha("a")); !ok || k.Release != "RC1" {
		t.Errorf("ReleaseOf(aaaa…) = %+v, %v, want RC1", k, ok)
	}
	if k, ok := ReleaseOf(got, sha("c")); ok {
		t.Errorf("ReleaseOf(cccc…) = %+v, want none: its release was rolled back", k)
	}
}

func TestGates(t *testing.T) {
	now := time.Date(2026, 11, 26, 23, 50, 0, 0, time.UTC)
	prod := ferry.Environment{Name: "prod", Branch: "release", From: "dev", Soak: 10 * time.Minute}
	cand := sha("c")
	ok := func() PromotionFacts {
		return PromotionFacts{
			Env: prod, Mainline: "master", Commit: cand, OnMainline: true,
			Upstream: []*ferry.Deployment{{ID: 3, State: ferry.DeploymentSucceeded, FinishedAt: now.Add(-time.Hour)}},
			Head:     sha("b"), Running: sha("b"), Ahead: true, Now: now,
		}
	}
	for _, tc := range []struct {
		name     string
		change   func(*PromotionFacts)
		wantCode string // "" for allowed
		wantMsg  string
	}{
		{"every gate passes", func(*PromotionFacts) {}, "", ""},
		{"takes no promotions", func(f *PromotionFacts) { f.Env = ferry.Environment{Name: "dev", Branch: "master"} },
			ferry.EINVALID, "dev takes no promotions: it follows branch master"},
		{"locked", func(f *PromotionFacts) {
			f.Lock = &ferry.Lock{Actor: "ada", Reason: "audit", CreatedAt: now.Add(-time.Hour)}
		}, ferry.ECONFLICT, "prod is locked by ada since 2026-11-26 22:50:00 UTC: audit (ferry unlock prod)"},
		{"outside the release windows", func(f *PromotionFacts) { // Thu 23:50 UTC
			f.Env.Windows = []ferry.Window{{Days: [7]bool{1: true, 2: true, 3: true, 4: true}, From: 9 * time.Hour, To: 16 * time.Hour, Location: time.UTC}}
		}, ferry.ECONFLICT, "prod takes promotions only in its windows (Mon-Thu 09:00-16:00 UTC); next opening Mon 2026-11-30 09:00 UTC; wait for it with --when-open"},
		{"in a freeze", func(f *PromotionFacts) {
			f.Env.Freezes = []ferry.Freeze{{From: now.Add(-time.Hour), To: now.Add(time.Hour), Reason: "black friday"}}
		}, ferry.ECONFLICT, "prod is frozen from Thu 2026-11-26 22:50 UTC to Fri 2026-11-27 00:50 UTC: black friday"},
		{"a freeze overridden", func(f *PromotionFacts) {
			f.Env.Freezes = []ferry.Freeze{{From: now.Add(-time.Hour), To: now.Add(time.Hour), Reason: "black friday"}}
			f.Override = true
		}, "", ""},
		{"a freeze that ended", func(f *PromotionFacts) {
			f.Env.Freezes = []ferry.Freeze{{From: now.Add(-time.Hour), To: now, Reason: "black friday"}}
		}, "", ""},
		{"rollout in progress", func(f *PromotionFacts) {
			f.Rollout = &ferry.Deployment{ID: 9, Kind: ferry.DeployPromote, Commit: sha("9")}
		}, ferry.ECONFLICT, "a rollout of prod is in progress (deployment 9, promote 999999999999); wait for it to end"},
		{"quarantined", func(f *PromotionFacts) { f.Quarantine = &ferry.Quarantine{Actor: "bob", Reason: "corrupts carts"} },
			ferry.ECONFLICT, "cccccccccccc is quarantined by bob: corrupts carts"},
		{"not on master", func(f *PromotionFacts) { f.OnMainline = false },
			ferry.ECONFLICT, "cccccccccccc is not on master's history: only commits of master are released"},
		{"never ran upstream", func(f *PromotionFacts) { f.Upstream = nil },
			ferry.ECONFLICT, "cccccccccccc never ran in dev: only digests that succeeded there are promoted"},
		{"only failed upstream", func(f *PromotionFacts) {
			f.Upstream = []*ferry.Deployment{
				{ID: 5, State: ferry.DeploymentRolledBack, Error: "crash-looping"},
				{ID: 4, State: ferry.DeploymentFailed, Error: "never ready"},
				{ID: 2, State: ferry.DeploymentSuperseded},
			}
		}, ferry.ECONFLICT, "cccccccccccc failed in dev (deployment 5: crash-looping): it is not promoted"},
		{"still rolling out upstream", func(f *PromotionFacts) {
			f.Upstream = []*ferry.Deployment{{ID: 6, State: ferry.DeploymentVerifying}}
		}, ferry.ECONFLICT, "cccccccccccc is still rolling out in dev (deployment 6, verifying): promote it once it has succeeded there"},
		{"rolling out again after a failure", func(f *PromotionFacts) {
			f.Upstream = []*ferry.Deployment{{ID: 7, State: ferry.DeploymentRolling}, {ID: 5, State: ferry.DeploymentFailed, Error: "never ready"}}
		}, ferry.ECONFLICT, "cccccccccccc is still rolling out in dev (deployment 7, rolling)"},
		{"failed once, succeeded since", func(f *PromotionFacts) {
			f.Upstream = append([]*ferry.Deployment{{ID: 8, State: ferry.DeploymentFailed}}, f.Upstream...)
		}, "", ""},
		{"soaking", func(f *PromotionFacts) { f.Upstream[0].FinishedAt = now.Add(-4 * time.Minute) },
			ferry.ECONFLICT, "cccccccccccc has run in dev for 4m0s; prod needs 10m0s of soak (promotable at 2026-11-26 23:56:00)"},
		{"soaked exactly", func(f *PromotionFacts) { f.Upstream[0].FinishedAt = now.Add(-10 * time.Minute) }, "", ""},
		{"soak counts from the first success", func(f *PromotionFacts) {
			f.Upstream = []*ferry.Deployment{
				{ID: 7, State: ferry.DeploymentSucceeded, FinishedAt: now.Add(-time.Minute)},
				{ID: 2, State: ferry.DeploymentSucceeded, FinishedAt: now.Add(-time.Hour)},
			}
		}, "", ""},
		{"no soak", func(f *PromotionFacts) { f.Env.Soak = 0; f.Upstream[0].FinishedAt = now }, "", ""},
		{"would move back from what runs", func(f *PromotionFacts) { f.Ahead = false },
			ferry.ECONFLICT, "cccccccccccc is not ahead of bbbbbbbbbbbb, which prod runs: a promotion only moves forward; to go back use ferry rollback prod"},
		{"back, whatever the branch says", func(f *PromotionFacts) { f.Ahead, f.Head = false, Zero },
			ferry.ECONFLICT, "is not ahead of bbbbbbbbbbbb, which prod runs"},
		{"a downgrade allowed", func(f *PromotionFacts) { f.Ahead, f.AllowDowngrade = false, true }, "", ""},
		{"already runs it", func(f *PromotionFacts) { f.Running = cand }, ferry.ECONFLICT, "prod already runs cccccccccccc: nothing to promote"},
		{"a release a rollback left", func(f *PromotionFacts) { f.Left = "RC7" },
			ferry.ECONFLICT, "cccccccccccc is RC7, which a rollback left: name it to run it again (ferry promote --to prod RC7)"},
		{"runs nothing yet", func(f *PromotionFacts) { f.Running, f.Ahead = "", false }, "", ""},
		{"release does not exist yet", func(f *PromotionFacts) { f.Head = Zero }, "", ""},
		{"the branch behind what runs", func(f *PromotionFacts) { f.Head = sha("a") }, "", ""},
		{"the first gate broken is the refusal", func(f *PromotionFacts) {
			f.Lock = &ferry.Lock{Actor: "ada", Reason: "audit"}
			f.OnMainline, f.Upstream = false, nil
		}, ferry.ECONFLICT, "prod is locked by ada"},
	} {
		f := ok()
		tc.change(&f)
		err := Gates(f)
		if tc.wantCode == "" {
			if err != nil {
				t.Errorf("%s: Gates(%.7s) = %v, want nil", tc.name, f.Commit, err)
			}
			continue
		}
		if ferry.ErrorCode(err) != tc.wantCode || !strings.Contains(ferry.ErrorMessage(err), tc.wantMsg) {
			t.Errorf("%s: Gates(%.7s) = %v, want %s containing %q", tc.name, f.Commit, err, tc.wantCode, tc.wantMsg)
		}
	}
}

func TestRollbackTarget(t *testing.T) {
	prod := ferry.Environment{Name: "prod", Branch: "release", From: "dev"}
	rc3 := Known{Release: "RC3", Commit: sha("c"), Digest: "sha256:c", Since: 30}
	rc2 := Known{Release: "RC2", Commit: sha("b"), Digest: "sha256:b", Since: 20}
	rc1 := Known{Release: "RC1", Commit: sha("a"), Digest: "sha256:a", Since: 10}
	left := func(k Known) Known { k.RolledBackFrom = true; return k }
	known := []Known{rc3, rc2, rc1}
	for _, tc := range []struct {
		name     string
		env      ferry.Environment
		known    []Known
		current  *ferry.Deployment
		to       string
		want     Known
		wantCode string
		wantMsg  string
	}{
		{"the previous release", prod, known, &ferry.Deployment{Release: "RC3", Digest: "sha256:c"}, "", rc2, "", ""},
		{"the named release", prod, known, &ferry.Deployment{Release: "RC3", Digest: "sha256:c"}, "RC1", rc1, "", ""},
		{"named while running nothing", prod, known, nil, "RC2", rc2, "", ""},
		{"skips a release of the digest that runs", prod, known, &ferry.Deployment{Release: "RC3_2", Digest: "sha256:c"}, "", rc2, "", ""},
		{"after a rollback, one further back", prod, []Known{rc2, left(rc3), rc1}, &ferry.Deployment{Release: "RC2", Digest: "sha256:b"}, "", rc1, "", ""},
		{"never forward after walking back", prod, []Known{rc1, left(rc2), left(rc3)}, &ferry.Deployment{Release: "RC1", Digest: "sha256:a"}, "", Known{}, ferry.ECONFLICT, "prod has no earlier release than RC1 to roll back to"},
		{"ran last is not newer in history", prod, []Known{rc1, rc3, rc2}, &ferry.Deployment{Release: "RC1", Digest: "sha256:a"}, "", Known{}, ferry.ECONFLICT, "never goes forward"},
		{"skips a release a rollback left", prod, []Known{{Release: "RC4", Digest: "sha256:d", Since: 40}, left(rc3), rc2, rc1}, &ferry.Deployment{Release: "RC4", Digest: "sha256:d"}, "", rc2, "", ""},
		{"a left release by name", prod, []Known{rc1, left(rc2)}, &ferry.Deployment{Release: "RC1", Digest: "sha256:a"}, "RC2", left(rc2), "", ""},
		{"never ran", prod, known, &ferry.Deployment{Release: "RC3"}, "RC9", Known{}, ferry.ENOTFOUND, "release RC9 never ran successfully in prod: nothing to roll back to"},
		{"runs nothing", prod, known, nil, "", Known{}, ferry.ECONFLICT, "prod runs nothing yet: nothing to roll back"},
		{"no earlier release", prod, []Known{rc3}, &ferry.Deployment{Release: "RC3", Digest: "sha256:c"}, "", Known{}, ferry.ECONFLICT, "prod has no earlier release than RC3 to roll back to"},
		{"no release at all", prod, nil, &ferry.Deployment{Digest: "sha256:c"}, "", Known{}, ferry.ECONFLICT, "prod has no earlier release than what it runs to roll back to"},
		{"not gated", ferry.Environment{Name: "dev", Branch: "master"}, known, nil, "", Known{}, ferry.EINVALID, "dev has no releases to roll back to: it follows branch master"},
	} {
		got, err := RollbackTarget(tc.env, tc.known, tc.current, tc.to)
		if tc.wantCode == "" {
			if err != nil || got != tc.want {
				t.Errorf("%s: RollbackTarget(%q) = %+v, %v, want %s", tc.name, tc.to, got, err, tc.want.Release)
			}
			continue
		}
		if ferry.ErrorCode(err) != tc.wantCode || !strings.Contains(ferry.ErrorMessage(err), tc.wantMsg) {
			t.Errorf("%s: RollbackTarget(%q) = %+v, %v, want %s containing %q", tc.name, tc.to, got, err, tc.wantCode, tc.wantMsg)
		}
	}
}

func TestRollbackGates(t *testing.T) {
	prod := ferry.Environment{Name: "prod", Branch: "release", From: "dev"}
	target := Known{Release: "RC2", Commit: sha("b")}
	for _, tc := range []struct {
		name     string
		f        RollbackFacts
		wantCode string
		wantMsg  string
	}{
		{"allowed", RollbackFacts{Env: prod, Target: target}, "", ""},
		{"quarantined", RollbackFacts{Env: prod, Target: target, Quarantine: &ferry.Quarantine{Actor: "ada", Reason: "corrupts carts"}},
			ferry.ECONFLICT, "RC2 (bbbbbbbbbbbb) is quarantined by ada: corrupts carts"},
		{"not gated", RollbackFacts{Env: ferry.Environment{Name: "dev", Branch: "master"}, Target: target}, ferry.EINVALID, "dev has no releases"},
	} {
		err := RollbackGates(tc.f)
		if tc.wantCode == "" && err != nil || tc.wantCode != "" && (ferry.ErrorCode(err) != tc.wantCode || !strings.Contains(ferry.ErrorMessage(err), tc.wantMsg)) {
			t.Errorf("%s: RollbackGates(%s) = %v, want %q containing %q", tc.name, tc.f.Target.Release, err, tc.wantCode, tc.wantMsg)
		}
	}
}

func TestForgeries(t *testing.T) {
	a, b := sha("a"), sha("b")
	da, db := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	records := Records([]*ferry.Deployment{
		{Release: "RC20240302_0900", Commit: b, Digest: db, State: ferry.DeploymentFailed}, // a failed attempt still made its registry tag
		{Release: "", Commit: b, Digest: db},
		{Release: "RC20240301_1200", Commit: a, Digest: da, State: ferry.DeploymentSucceeded},
		{Release: "RC20240301_1200", Commit: b, Digest: db, State: ferry.DeploymentSucceeded}, // older: the newest record counts
	})
	for _, tc := range []struct {
		name          string
		git, registry map[string]string
		want          []string // Where/Tag: a fragment of Why
	}{
		{"all ferry's", map[string]string{"RC20240301_1200": a, "env/prod": b, "v1.0": b},
			map[string]string{"RC20240301_1200": da, "RC20240302_0900": db, "latest": db, "sha-" + a: da}, nil},
		{"no such release", map[string]string{"RC20990101_0003": a}, map[string]string{"RC20990101_0003": da}, []string{
			"git/RC20990101_0003: git tag RC20990101_0003 names aaaaaaaaaaaa, but the ledger has no release RC20990101_0003",
			"registry/RC20990101_0003: registry tag RC20990101_0003 names " + ferry.ShortDigest(da) + ", but the ledger has no release",
		}},
		{"another commit or digest", map[string]string{"RC20240301_1200": b}, map[string]string{"RC20240302_0900": da}, []string{
			"git/RC20240301_1200: git tag RC20240301_1200 names bbbbbbbbbbbb, but release RC20240301_1200 ran commit aaaaaaaaaaaa",
			"registry/RC20240302_0900: names " + ferry.ShortDigest(da) + ", but release RC20240302_0900 ran digest " + ferry.ShortDigest(db),
		}},
	} {
		got := Forgeries(records, tc.git, tc.registry)
		if len(got) != len(tc.want) {
			t.Errorf("%s: Forgeries = %+v, want %d", tc.name, got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			where, why, _ := strings.Cut(w, ": ")
			if g := got[i]; g.Where+"/"+g.Tag != where || !strings.Contains(g.Why, why) {
				t.Errorf("%s: forgery %d = %+v, want %s with %q", tc.name, i, g, where, why)
			}
		}
	}
}

// TestKnownReleasesHistory: releases are placed in history by their first
// succeeded deployment, and the one a rollback left is marked.
func TestKnownReleasesHistory(t *testing.T) {
	prod := ferry.Environment{Name: "prod", Branch: "release", From: "dev"}
	ok := ferry.DeploymentSucceeded
	d := func(id int64, kind ferry.DeploymentKind, rel string, st ferry.DeploymentState) *ferry.Deployment {
		return &ferry.Deployment{ID: id, Env: "prod", Kind: kind, Release: rel, Digest: "sha256:" + rel, State: st}
	}
	for _, tc := range []struct {
		name string
		ds   []*ferry.Deployment // newest first
		want []string            // release:since[:left], newest run first
	}{
		{"promotions", []*ferry.Deployment{d(3, ferry.DeployPromote, "C", ok), d(2, ferry.DeployPromote, "B", ok), d(1, ferry.DeployPromote, "A", ok)},
			[]string{"C:3", "B:2", "A:1"}},
		{"two rollbacks", []*ferry.Deployment{d(5, ferry.DeployRollback, "A", ok), d(4, ferry.DeployRollback, "B", ok), d(3, ferry.DeployPromote, "C", ok), d(2, ferry.DeployPromote, "B", ok), d(1, ferry.DeployPromote, "A", ok)},
			[]string{"A:1", "B:2:left", "C:3:left"}},
		{"a failed rollback leaves nothing", []*ferry.Deployment{d(3, ferry.DeployRollback, "A", ferry.DeploymentFailed), d(2, ferry.DeployPromote, "B", ok), d(1, ferry.DeployPromote, "A", ok)},
			[]string{"B:2", "A:1"}},
		{"an automatic revert leaves nothing", []*ferry.Deployment{d(4, ferry.DeployAutoRollback, "B", ok), d(3, ferry.DeployPromote, "C", ferry.DeploymentRolledBack), d(2, ferry.DeployPromote, "B", ok), d(1, ferry.DeployPromote, "A", ok)},
			[]string{"B:2", "A:1"}},
		{"a scale keeps the release", []*ferry.Deployment{d(4, ferry.DeployRollback, "A", ok), d(3, ferry.DeployScale, "B", ok), d(2, ferry.DeployPromote, "B", ok), d(1, ferry.DeployPromote, "A", ok)},
			[]string{"A:1", "B:2:left"}},
	} {
		var got []string
		for _, k := range KnownReleases(prod, tc.ds) {
			s := fmt.Sprintf("%s:%d", k.Release, k.Since)
			if k.RolledBackFrom {
				s += ":left"
			}
			got = append(got, s)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: KnownReleases = %v, want %v", tc.name, got, tc.want)
		}
	}
}
