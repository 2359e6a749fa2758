package dashboard

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// fakeQueue records the actions queued, numbering them from 30.
type fakeQueue struct {
	mu      sync.Mutex
	actions []ferry.Action
}

func (q *fakeQueue) Queue(_ context.Context, a ferry.Action) (*ferry.Action, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.actions = append(q.actions, a)
	a.ID, a.State = int64(29+len(q.actions)), ferry.ActionQueued
	return &a, nil
}

func (q *fakeQueue) Queued() []ferry.Action {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.actions)
}

// TestOverride: while prod is outside its release windows, an admin (and
// only an admin, release.MayOverride's rule) is offered the override; its
// post queues a promotion with Override, the reason and the admin's name;
// a releaser's forged post, an admin's without a reason and a post while
// the dashboard has no queue are refused, queuing nothing. Open, prod
// offers no override.
func TestOverride(t *testing.T) {
	q := &fakeQueue{}
	closed := func(c *Config) {
		c.Queue = q
		c.Envs[1].Windows = []ferry.Window{{Days: [7]bool{1: true}, From: 9 * time.Hour, To: 10 * time.Hour, Location: time.UTC}} // Mondays 09-10
	}
	f := newFixture(t, closed) // the fixture's clock: Friday 2026-01-02 03:04 UTC
	form := `action="/envs/prod/override"`
	for _, tc := range []struct {
		role ferry.Role
		sees bool
	}{
		{ferry.RoleViewer, false}, {ferry.RoleDeployer, false}, {ferry.RoleReleaser, false}, {ferry.RoleAdmin, true},
	} {
		_, body := f.do(tc.role, "GET", "/", nil, nil)
		if got := strings.Contains(body, form); got != tc.sees {
			t.Errorf("%s sees the override: %v, want %v", tc.role, got, tc.sees)
		}
		if tc.sees && !strings.Contains(body, `<input id="override-reason-prod" name="reason" required`) {
			t.Errorf("the override's reason is not required:\n%s", body)
		}
	}
	async := map[string]string{"X-Ferry-Async": "1"}
	for _, tc := range []struct {
		role   ferry.Role
		form   url.Values
		status int
		text   string
	}{
		{ferry.RoleReleaser, url.Values{"reason": {"hotfix"}}, 403, "Override of prod refused: only an admin may override release windows and freezes (role releaser)."},
		{ferry.RoleAdmin, url.Values{"reason": {"  "}}, 400, "Override of prod refused: an override of release windows and freezes needs a reason"},
		{ferry.RoleAdmin, url.Values{"reason": {"hotfix for #12"}, "ref": {"RC20260101_0000"}}, 200, "Promotion to prod overriding its release windows and freezes queued as action 30"},
	} {
		resp, body := f.do(tc.role, "POST", "/envs/prod/override", tc.form, async)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.text) {
			t.Errorf("%s override %v = %d %s, want %d %q", tc.role, tc.form, resp.StatusCode, body, tc.status, tc.text)
		}
	}
	want := []ferry.Action{{Env: "prod", Kind: ferry.ActionPromote, Ref: "RC20260101_0000", Override: true, Actor: "t-admin", Reason: "hotfix for #12"}}
	if got := q.Queued(); !slices.Equal(got, want) {
		t.Errorf("queued %+v, want %+v", got, want)
	}
	if len(f.rel.Calls()) != 0 {
		t.Errorf("an override called %v, want only the queue", f.rel.Calls())
	}

	open := newFixture(t, func(c *Config) { c.Queue = q })
	if _, body := open.do(ferry.RoleAdmin, "GET", "/", nil, nil); strings.Contains(body, form) {
		t.Error("an open prod offers the override")
	}
	noQueue := newFixture(t, func(c *Config) { closed(c); c.Queue = nil })
	if _, body := noQueue.do(ferry.RoleAdmin, "GET", "/", nil, nil); strings.Contains(body, form) {
		t.Error("a dashboard without a queue offers the override")
	}
	if resp, _ := noQueue.do(ferry.RoleAdmin, "POST", "/envs/prod/override", url.Values{"reason": {"x"}}, async); resp.StatusCode != 404 {
		t.Errorf("override without a queue = %d, want 404", resp.StatusCode)
	}
	if got := len(q.Queued()); got != 1 {
		t.Errorf("%d actions queued, want the admin's one", got)
	}
}
