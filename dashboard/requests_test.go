package dashboard

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// fakeApprovals holds one pending request and records the calls made.
type fakeApprovals struct {
	mu    sync.Mutex
	req   *ferry.ReleaseRequest
	calls []string
}

func (f *fakeApprovals) ReleaseRequests(context.Context, ledger.RequestFilter) ([]*ferry.ReleaseRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *f.req
	return []*ferry.ReleaseRequest{&c}, nil
}

func (f *fakeApprovals) Approve(_ context.Context, id int64, approver string, role ferry.Role, reason string) (*ferry.ReleaseRequest, *ferry.Action, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "approve "+approver+" "+string(role)+" "+reason)
	c := *f.req
	c.State, c.Approvals = ferry.RequestApproved, []ferry.Approver{{Actor: approver, Role: role}}
	return &c, &ferry.Action{ID: 12, Env: c.Env, Kind: ferry.ActionPromote}, nil
}

func (f *fakeApprovals) CancelRequest(_ context.Context, id int64, actor string, role ferry.Role, reason string) (*ferry.ReleaseRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "cancel "+actor+" "+reason)
	return f.req, nil
}

// TestPendingReleases: the page lists the pending releases; each token
// sees the approve button exactly when the API's rule would let it
// approve (not the requester, not below the rule's role) and is told why
// not otherwise; approve and cancel reach the controller with the token's
// name, role and reason; a viewer is refused.
func TestPendingReleases(t *testing.T) {
	fa := &fakeApprovals{}
	f := newFixture(t, func(c *Config) {
		c.Approvals = fa
		c.Envs[1].Approval = &ferry.Approval{Required: 1, Role: ferry.RoleReleaser, Expires: time.Hour}
	})
	fa.req = &ferry.ReleaseRequest{ID: 4, App: app, Env: "prod", Commit: commitA, Digest: digestA, Author: "Ada", Requester: "t-releaser",
		Reason: "weekly", State: ferry.RequestPending, Required: 1, Approvals: []ferry.Approver{}, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}
	for _, tc := range []struct {
		role            ferry.Role
		approve, cancel bool
		why             string
	}{
		{ferry.RoleViewer, false, false, "t-viewer (role viewer) may not approve"},
		{ferry.RoleDeployer, false, false, "t-deployer (role deployer) may not approve"},
		{ferry.RoleReleaser, false, true, "self-approval is refused: t-releaser asked for release request 4"},
		{ferry.RoleAdmin, true, true, ""},
	} {
		resp, body := f.do(tc.role, "GET", "/", nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `id="requests"`) || !strings.Contains(body, `data-request="4"`) {
			t.Fatalf("GET / as %s = %d without the pending release", tc.role, resp.StatusCode)
		}
		if got := strings.Contains(body, `id="approve-4"`); got != tc.approve {
			t.Errorf("as %s: approve button %v, want %v", tc.role, got, tc.approve)
		}
		if got := strings.Contains(body, `id="cancel-4"`); got != tc.cancel {
			t.Errorf("as %s: cancel button %v, want %v", tc.role, got, tc.cancel)
		}
		if tc.why != "" && !strings.Contains(body, tc.why) {
			t.Errorf("as %s: the page does not say %q", tc.role, tc.why)
		}
	}
	_, frag := f.do(ferry.RoleAdmin, "GET", "/fragments/requests", nil, nil)
	if !strings.Contains(frag, "Pending releases") || !strings.Contains(frag, `id="approve-4"`) {
		t.Errorf("the requests fragment = %q", frag)
	}

	async := map[string]string{"X-Ferry-Async": "1"}
	resp, body := f.do(ferry.RoleViewer, "POST", "/requests/4/approve", url.Values{}, async)
	if resp.StatusCode != 403 || !strings.Contains(body, "needs deployer") {
		t.Errorf("viewer's approval = %d %q, want 403", resp.StatusCode, body)
	}
	resp, body = f.do(ferry.RoleAdmin, "POST", "/requests/4/approve", url.Values{"reason": {"ok by me"}}, async)
	if resp.StatusCode != 200 || !strings.Contains(body, "Release request 4 approved: promotion of "+ferry.ShortSHA(commitA)+" to prod queued as action 12.") {
		t.Errorf("admin's approval = %d %q", resp.StatusCode, body)
	}
	resp, _ = f.do(ferry.RoleReleaser, "POST", "/requests/4/cancel", url.Values{"reason": {"wrong"}}, async)
	if resp.StatusCode != 200 {
		t.Errorf("cancel = %d", resp.StatusCode)
	}
	resp, _ = f.do(ferry.RoleAdmin, "POST", "/requests/4/merge", url.Values{}, async)
	if resp.StatusCode != 404 {
		t.Errorf("unknown request action = %d, want 404", resp.StatusCode)
	}
	if got, want := strings.Join(fa.calls, "; "), "approve t-admin admin ok by me; cancel t-releaser wrong"; got != want {
		t.Errorf("calls = %q, want %q", got, want)
	}
}

// TestClosedEnvironmentShown: outside prod's release windows the actions
// panel says so, with the next opening, and quotes the approval rule.
func TestClosedEnvironmentShown(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Envs[1].Windows = []ferry.Window{{Days: [7]bool{1: true}, From: 9 * time.Hour, To: 10 * time.Hour, Location: time.UTC}} // Mondays 09-10
		c.Envs[1].Approval = &ferry.Approval{Required: 2, Role: ferry.RoleReleaser, Expires: time.Hour}
	}) // the fixture's clock: Friday 2026-01-02 03:04 UTC
	_, body := f.do(ferry.RoleReleaser, "GET", "/", nil, nil)
	if !strings.Contains(body, "prod takes promotions only in its windows (Mon 09:00-10:00 UTC); next opening Mon 2026-01-05 09:00 UTC") {
		t.Errorf("the page does not say prod is closed until Monday")
	}
	if !strings.Contains(body, "Promotions wait for approval: approval: { required: 2, role: releaser") {
		t.Errorf("the page does not quote prod's approval rule")
	}
}
