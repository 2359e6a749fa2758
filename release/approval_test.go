package release

import (
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

func TestApprove(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	rule := ferry.Approval{Required: 1, Role: ferry.RoleReleaser, Expires: 24 * time.Hour}
	two := rule
	two.Required = 2
	self := rule
	self.SelfApproval = true
	req := func(mod func(r *ferry.ReleaseRequest)) *ferry.ReleaseRequest {
		r := &ferry.ReleaseRequest{ID: 7, Env: "prod", Commit: strings.Repeat("a", 40), Author: "Ada Lovelace <ada@example.com>",
			Requester: "alice", State: ferry.RequestPending, Required: 1, Approvals: []ferry.Approver{},
			CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(23 * time.Hour)}
		if mod != nil {
			mod(r)
		}
		return r
	}
	tests := []struct {
		name         string
		rule         ferry.Approval
		req          *ferry.ReleaseRequest
		approver     string
		role         ferry.Role
		now          time.Time
		wantComplete bool
		wantCode     string
		wantMsg      string
	}{
		{"another releaser completes it", rule, req(nil), "bob", ferry.RoleReleaser, now, true, "", ""},
		{"an admin may approve", rule, req(nil), "root", ferry.RoleAdmin, now, true, "", ""},
		{"self-approval", rule, req(nil), "alice", ferry.RoleReleaser, now, false, ferry.EFORBIDDEN,
			"self-approval is refused: alice asked for release request 7, and approval: { required: 1, role: releaser, selfApproval: false, expires: 24h0m0s } in prod needs someone else"},
		{"the commit's author by email", rule, req(nil), "ada", ferry.RoleReleaser, now, false, ferry.EFORBIDDEN, "self-approval is refused: ada wrote aaaaaaaaaaaa"},
		{"the commit's author by name", rule, req(nil), "ada lovelace", ferry.RoleReleaser, now, false, ferry.EFORBIDDEN, "self-approval is refused"},
		{"a plain author name", rule, req(func(r *ferry.ReleaseRequest) { r.Author = "Bob" }), "bob", ferry.RoleReleaser, now, false, ferry.EFORBIDDEN, "author Bob"},
		{"an unknown author is nobody", rule, req(func(r *ferry.ReleaseRequest) { r.Author = "" }), "bob", ferry.RoleReleaser, now, true, "", ""},
		{"self-approval allowed", self, req(nil), "alice", ferry.RoleReleaser, now, true, "", ""},
		{"a viewer", rule, req(nil), "vic", ferry.RoleViewer, now, false, ferry.EFORBIDDEN, "vic (role viewer) may not approve a release to prod: approval: { required: 1, role: releaser"},
		{"a deployer", rule, req(nil), "dan", ferry.RoleDeployer, now, false, ferry.EFORBIDDEN, "needs role releaser"},
		{"expired by the clock", rule, req(nil), "bob", ferry.RoleReleaser, now.Add(23 * time.Hour), false, ferry.ECONFLICT, "release request 7 expired at 2026-12-04 09:00:00 UTC"},
		{"expired recorded", rule, req(func(r *ferry.ReleaseRequest) { r.State = ferry.RequestExpired }), "bob", ferry.RoleReleaser, now, false, ferry.ECONFLICT, "expired"},
		{"cancelled", rule, req(func(r *ferry.ReleaseRequest) {
			r.State, r.Result = ferry.RequestCancelled, "cancelled by alice: wrong commit"
		}), "bob", ferry.RoleReleaser, now, false, ferry.ECONFLICT,
			"release request 7 was cancelled (cancelled by alice: wrong commit)"},
		{"approved already", rule, req(func(r *ferry.ReleaseRequest) {
			r.State, r.Approvals = ferry.RequestApproved, []ferry.Approver{{Actor: "bob"}}
		}), "carol", ferry.RoleReleaser, now, false, ferry.ECONFLICT, "approved already (by bob)"},
		{"first of two", two, req(func(r *ferry.ReleaseRequest) { r.Required = 2 }), "bob", ferry.RoleReleaser, now, false, "", ""},
		{"second of two", two, req(func(r *ferry.ReleaseRequest) { r.Required = 2; r.Approvals = []ferry.Approver{{Actor: "bob"}} }), "carol", ferry.RoleReleaser, now, true, "", ""},
		{"the same person twice", two, req(func(r *ferry.ReleaseRequest) { r.Required = 2; r.Approvals = []ferry.Approver{{Actor: "bob"}} }), "bob", ferry.RoleReleaser, now, false, ferry.ECONFLICT,
			"bob approved release request 7 already: each approval is by a different person (1 of 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			complete, err := Approve(ApprovalFacts{Rule: tt.rule, Request: tt.req, Approver: tt.approver, Role: tt.role, Now: tt.now})
			if (tt.wantCode == "") != (err == nil) || err != nil && (ferry.ErrorCode(err) != tt.wantCode || !strings.Contains(ferry.ErrorMessage(err), tt.wantMsg)) {
				t.Fatalf("Approve(%s as %s) = %v, want code %q containing %q", tt.approver, tt.role, err, tt.wantCode, tt.wantMsg)
			}
			if complete != tt.wantComplete {
				t.Errorf("Approve(%s as %s) complete = %v, want %v", tt.approver, tt.role, complete, tt.wantComplete)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	rule := ferry.Approval{Required: 1, Role: ferry.RoleReleaser, Expires: time.Hour}
	pending := &ferry.ReleaseRequest{ID: 3, Env: "prod", Requester: "alice", State: ferry.RequestPending, ExpiresAt: now.Add(time.Minute)}
	approved := &ferry.ReleaseRequest{ID: 3, Env: "prod", Requester: "alice", State: ferry.RequestApproved, ExpiresAt: now.Add(time.Minute)}
	tests := []struct {
		name     string
		req      *ferry.ReleaseRequest
		actor    string
		role     ferry.Role
		now      time.Time
		wantCode string
	}{
		{"the requester", pending, "alice", ferry.RoleDeployer, now, ""},
		{"a releaser", pending, "bob", ferry.RoleReleaser, now, ""},
		{"a deployer not the requester", pending, "dan", ferry.RoleDeployer, now, ferry.EFORBIDDEN},
		{"approved", approved, "alice", ferry.RoleReleaser, now, ferry.ECONFLICT},
		{"expired", pending, "alice", ferry.RoleReleaser, now.Add(time.Minute), ferry.ECONFLICT},
	}
	for _, tt := range tests {
		if err := Cancel(rule, tt.req, tt.actor, tt.role, tt.now); (tt.wantCode == "") != (err == nil) || err != nil && ferry.ErrorCode(err) != tt.wantCode {
			t.Errorf("%s: Cancel = %v, want code %q", tt.name, err, tt.wantCode)
		}
	}
}

func TestSamePerson(t *testing.T) {
	tests := []struct {
		actor, author string
		want          bool
	}{
		{"ada", "Ada Lovelace <ada@example.com>", true},
		{"ada@example.com", "Ada Lovelace <ada@example.com>", true},
		{"Ada Lovelace", "Ada Lovelace <ada@example.com>", true},
		{"bob", "Ada Lovelace <ada@example.com>", false},
		{"ada", "Ada", true},
		{"ada", "", false},
		{"", "Ada", false},
		{"ad", "Ada", false},
	}
	for _, tt := range tests {
		if got := SamePerson(tt.actor, tt.author); got != tt.want {
			t.Errorf("SamePerson(%q, %q) = %v, want %v", tt.actor, tt.author, got, tt.want)
		}
	}
}
