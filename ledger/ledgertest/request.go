package ledgertest

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

func newRequest(env string, i int) *ferry.ReleaseRequest {
	return &ferry.ReleaseRequest{App: "app", Env: env, Commit: commit(i), Digest: digest(i), BuildID: int64(i),
		Author: "Ada <ada@example.com>", Requester: "alice", Reason: "ship it", Required: 1,
		CreatedAt: at(time.Duration(i) * time.Second), ExpiresAt: at(time.Duration(i)*time.Second + 24*time.Hour)}
}

func mustRequest(t *testing.T, s ledger.Store, r *ferry.ReleaseRequest) *ferry.ReleaseRequest {
	t.Helper()
	if err := s.CreateReleaseRequest(t.Context(), r); err != nil {
		t.Fatalf("CreateReleaseRequest(%s) = %v", r.Env, err)
	}
	return r
}

func mustGetRequest(t *testing.T, s ledger.Store, id int64) *ferry.ReleaseRequest {
	t.Helper()
	r, err := s.ReleaseRequest(t.Context(), id)
	if err != nil {
		t.Fatalf("ReleaseRequest(%d) = %v", id, err)
	}
	return r
}

// testReleaseRequests: a request round-trips every field, is refused when
// malformed, collects approvals by compare-and-set (one per person, none
// once decided, none on a stale read), closes pending → cancelled or
// expired once, links its releasing action once, and lists newest first
// by environment and state with its approvals.
func testReleaseRequests(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()

	r := mustRequest(t, s, &ferry.ReleaseRequest{App: "app", Env: "prod", Ref: "RC20250314_1509", Commit: commit(1), Digest: digest(1), BuildID: 3,
		Author: "Ada <ada@example.com>", Requester: "alice", Reason: "fixes #12", Required: 2, RequestActionID: 9,
		CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)})
	if r.ID == 0 || r.State != ferry.RequestPending {
		t.Fatalf("CreateReleaseRequest set ID %d, state %q; want an ID and pending", r.ID, r.State)
	}
	want := *r
	want.CreatedAt, want.ExpiresAt = t0.UTC(), t0.Add(24*time.Hour).UTC()
	if got := mustGetRequest(t, s, r.ID); !reflect.DeepEqual(*got, want) {
		t.Errorf("ReleaseRequest(%d) =\n%+v\nwant\n%+v", r.ID, *got, want)
	}

	for _, tt := range []struct {
		name string
		mod  func(r *ferry.ReleaseRequest)
		msg  string
	}{
		{"short commit", func(r *ferry.ReleaseRequest) { r.Commit = "abc1234" }, `release request commit "abc1234" is not a full 40-hex commit`},
		{"bad digest", func(r *ferry.ReleaseRequest) { r.Digest = "sha256:xyz" }, `release request digest "sha256:xyz" is not a sha256 digest`},
		{"no requester", func(r *ferry.ReleaseRequest) { r.Requester = "" }, "a release request needs its requester"},
		{"no approvals required", func(r *ferry.ReleaseRequest) { r.Required = 0 }, "a release request needs at least one approval, not 0"},
		{"not pending", func(r *ferry.ReleaseRequest) { r.State = ferry.RequestApproved }, "a release request is recorded pending, not approved"},
		{"no expiry", func(r *ferry.ReleaseRequest) { r.ExpiresAt = time.Time{} }, "a release request needs its creation and expiry times"},
		{"no env", func(r *ferry.ReleaseRequest) { r.Env = "" }, "a release request needs an app and an environment"},
	} {
		bad := newRequest("prod", 50)
		tt.mod(bad)
		if err := s.CreateReleaseRequest(ctx, bad); ferry.ErrorCode(err) != ferry.EINVALID || ferry.ErrorMessage(err) != tt.msg {
			t.Errorf("CreateReleaseRequest(%s) = %v, want EINVALID %q", tt.name, err, tt.msg)
		}
	}

	bob := ferry.Approver{Actor: "bob", Role: ferry.RoleReleaser, Reason: "looks good", At: t0.Add(time.Minute)}
	if err := s.AddApproval(ctx, r.ID, bob, 0, false); err != nil {
		t.Fatalf("AddApproval(bob) = %v", err)
	}
	if err := s.AddApproval(ctx, r.ID, bob, 1, true); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("AddApproval(bob again) = %v, want ECONFLICT", err)
	}
	carol := ferry.Approver{Actor: "carol", Role: ferry.RoleAdmin, At: t0.Add(2 * time.Minute)}
	if err := s.AddApproval(ctx, r.ID, carol, 0, true); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("AddApproval(carol, stale read) = %v, want ECONFLICT", err)
	}
	if err := s.AddApproval(ctx, r.ID, ferry.Approver{Actor: "dan", At: t0}, 1, true); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("AddApproval(without a role) = %v, want EINVALID", err)
	}
	if err := s.SetRequestAction(ctx, r.ID, 5); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("SetRequestAction(pending) = %v, want ECONFLICT", err)
	}
	if err := s.AddApproval(ctx, r.ID, carol, 1, true); err != nil {
		t.Fatalf("AddApproval(carol) = %v", err)
	}
	got := mustGetRequest(t, s, r.ID)
	wantApprovals := []ferry.Approver{{Actor: "bob", Role: ferry.RoleReleaser, Reason: "looks good", At: bob.At.UTC()}, {Actor: "carol", Role: ferry.RoleAdmin, At: carol.At.UTC()}}
	if got.State != ferry.RequestApproved || !got.DecidedAt.Equal(carol.At) || !reflect.DeepEqual(got.Approvals, wantApprovals) {
		t.Errorf("after two approvals: state %s decided %v approvals %+v; want approved at %v by %+v", got.State, got.DecidedAt, got.Approvals, carol.At, wantApprovals)
	}
	if err := s.AddApproval(ctx, r.ID, ferry.Approver{Actor: "erin", Role: ferry.RoleAdmin, At: t0}, 2, true); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("AddApproval(approved) = %v, want ECONFLICT", err)
	}
	if err := s.CloseReleaseRequest(ctx, r.ID, ferry.RequestCancelled, "too late", t0); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("CloseReleaseRequest(approved) = %v, want ECONFLICT", err)
	}
	if err := s.SetRequestAction(ctx, r.ID, 7); err != nil {
		t.Fatalf("SetRequestAction = %v", err)
	}
	if err := s.SetRequestAction(ctx, r.ID, 8); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("SetRequestAction(twice) = %v, want ECONFLICT", err)
	}
	if got := mustGetRequest(t, s, r.ID); got.ActionID != 7 {
		t.Errorf("ActionID = %d, want 7", got.ActionID)
	}

	c := mustRequest(t, s, newRequest("prod", 2))
	if err := s.CloseReleaseRequest(ctx, c.ID, ferry.RequestApproved, "", t0); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("CloseReleaseRequest(to approved) = %v, want EINVALID", err)
	}
	if err := s.CloseReleaseRequest(ctx, c.ID, ferry.RequestCancelled, "cancelled by alice: wrong commit", t0.Add(time.Hour)); err != nil {
		t.Fatalf("CloseReleaseRequest = %v", err)
	}
	if err := s.CloseReleaseRequest(ctx, c.ID, ferry.RequestExpired, "", t0.Add(time.Hour)); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("CloseReleaseRequest(twice) = %v, want ECONFLICT", err)
	}
	if err := s.AddApproval(ctx, c.ID, bob, 0, true); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("AddApproval(cancelled) = %v, want ECONFLICT", err)
	}
	if got := mustGetRequest(t, s, c.ID); got.State != ferry.RequestCancelled || got.Result != "cancelled by alice: wrong commit" || !got.DecidedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("cancelled request = %+v", got)
	}
	staging := mustRequest(t, s, newRequest("staging", 3))

	list := func(f ledger.RequestFilter) []int64 {
		t.Helper()
		f.App = "app"
		rs, err := s.ReleaseRequests(ctx, f)
		if err != nil {
			t.Fatalf("ReleaseRequests(%+v) = %v", f, err)
		}
		ids := []int64{}
		for _, r := range rs {
			ids = append(ids, r.ID)
			if r.Approvals == nil {
				t.Errorf("request %d listed with nil approvals", r.ID)
			}
		}
		return ids
	}
	for _, tt := range []struct {
		name string
		f    ledger.RequestFilter
		want []int64
	}{
		{"all", ledger.RequestFilter{}, []int64{staging.ID, c.ID, r.ID}},
		{"prod", ledger.RequestFilter{Env: "prod"}, []int64{c.ID, r.ID}},
		{"pending", ledger.RequestFilter{States: []ferry.RequestState{ferry.RequestPending}}, []int64{staging.ID}},
		{"approved or cancelled", ledger.RequestFilter{States: []ferry.RequestState{ferry.RequestApproved, ferry.RequestCancelled}}, []int64{c.ID, r.ID}},
		{"page", ledger.RequestFilter{BeforeID: staging.ID, Limit: 1}, []int64{c.ID}},
	} {
		if got := list(tt.f); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ReleaseRequests(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
	rs, err := s.ReleaseRequests(ctx, ledger.RequestFilter{App: "app", Env: "prod"})
	if err != nil || len(rs) != 2 || len(rs[1].Approvals) != 2 {
		t.Errorf("ReleaseRequests(prod) = %+v, %v; want the approved one with its two approvals", rs, err)
	}
	if _, err := s.ReleaseRequest(ctx, 999); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("ReleaseRequest(999) = %v, want ENOTFOUND", err)
	}
	if _, err := s.ReleaseRequests(ctx, ledger.RequestFilter{Env: "pr\x00od"}); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("ReleaseRequests(NUL env) = %v, want EINVALID", err)
	}
}

// testApprovalRace: approvers racing for the one approval a request
// needs: exactly one is recorded and completes it.
func testApprovalRace(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	r := mustRequest(t, s, newRequest("prod", 1))
	const n = 8
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won []string
	)
	for i := range n {
		wg.Go(func() {
			a := ferry.Approver{Actor: string(rune('a' + i)), Role: ferry.RoleReleaser, At: at(time.Minute)}
			err := s.AddApproval(t.Context(), r.ID, a, 0, true)
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, a.Actor)
				mu.Unlock()
			case ferry.ErrorCode(err) != ferry.ECONFLICT:
				t.Errorf("AddApproval(%s) = %v, want nil or ECONFLICT", a.Actor, err)
			}
		})
	}
	wg.Wait()
	got := mustGetRequest(t, s, r.ID)
	if len(won) != 1 || got.State != ferry.RequestApproved || len(got.Approvals) != 1 || got.Approvals[0].Actor != won[0] {
		t.Errorf("%d racing approvals: won %v, request %s with %+v; want exactly one", n, won, got.State, got.Approvals)
	}
}
