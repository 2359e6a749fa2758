package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ferryhq/ferry"
)

// TestActionsAnswerQueued: promote, rollback, scale, lock and unlock
// answer 202 with the action, queued, before its turn; GET follows it;
// the environment's role still decides who may ask.
func TestActionsAnswerQueued(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	rel := ta.secrets[ferry.RoleReleaser]
	tests := []struct {
		method, path, body string
		kind               ferry.ActionKind
		want               func(a *ferry.Action) bool
	}{
		{"POST", "/api/v1/envs/prod/promote", `{"ref":"RC20250101_0000","reason":"weekly"}`, ferry.ActionPromote,
			func(a *ferry.Action) bool { return a.Ref == "RC20250101_0000" && a.Reason == "weekly" }},
		{"POST", "/api/v1/envs/prod/promote", `{"allowDowngrade":true,"reason":"bad"}`, ferry.ActionPromote,
			func(a *ferry.Action) bool { return a.AllowDowngrade }},
		{"POST", "/api/v1/envs/prod/rollback", `{"to":"RC1"}`, ferry.ActionRollback, func(a *ferry.Action) bool { return a.Ref == "RC1" }},
		{"POST", "/api/v1/envs/prod/scale", `{"replicas":3}`, ferry.ActionScale, func(a *ferry.Action) bool { return a.Replicas == 3 }},
		{"POST", "/api/v1/envs/prod/lock", `{"reason":"freeze"}`, ferry.ActionLock, func(a *ferry.Action) bool { return a.Reason == "freeze" }},
		{"DELETE", "/api/v1/envs/prod/lock", ``, ferry.ActionUnlock, func(a *ferry.Action) bool { return true }},
	}
	var ids []int64
	for _, tt := range tests {
		status, body := ta.do(t, rel, tt.method, tt.path, tt.body)
		var got ActionBody
		if err := json.Unmarshal([]byte(body), &got); status != 202 || err != nil || got.Action == nil {
			t.Errorf("%s %s = %d %s, want 202 with the action", tt.method, tt.path, status, body)
			continue
		}
		a := got.Action
		if a.ID == 0 || a.Kind != tt.kind || a.State != ferry.ActionQueued || a.Actor != "releaser" || a.Env != "prod" || !tt.want(a) ||
			got.Links.Self != fmt.Sprintf("/api/v1/actions/%d", a.ID) {
			t.Errorf("%s %s = %s, want a queued %s of prod by releaser with its parameters and link", tt.method, tt.path, body, tt.kind)
		}
		ids = append(ids, a.ID)
		status, body = ta.do(t, ta.secrets[ferry.RoleViewer], "GET", got.Links.Self, "")
		if status != 200 || !strings.Contains(body, fmt.Sprintf(`"id": %d`, a.ID)) || !strings.Contains(body, `"kind": "`+string(tt.kind)+`"`) {
			t.Errorf("GET %s = %d %s, want the action", got.Links.Self, status, body)
		}
	}
	status, body := ta.do(t, ta.secrets[ferry.RoleViewer], "GET", "/api/v1/actions?env=prod&limit=2", "")
	var list ActionList
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil || len(list.Actions) != 2 || list.Actions[0].ID != ids[len(ids)-1] {
		t.Errorf("GET /api/v1/actions?env=prod&limit=2 = %d %s, want the 2 newest", status, body)
	}
	for _, tt := range []struct {
		secret, method, path, body string
		status                     int
		want                       string
	}{
		{ta.secrets[ferry.RoleDeployer], "POST", "/api/v1/envs/prod/promote", `{}`, 403, "this needs releaser"},
		{rel, "POST", "/api/v1/envs/prdo/rollback", `{}`, 404, `unknown environment \"prdo\" (did you mean \"prod\"?)`},
		{rel, "POST", "/api/v1/envs/prod/promote", `{"ref":"RC\u0000x"}`, 400, "NUL"},
		{ta.secrets[ferry.RoleViewer], "GET", "/api/v1/actions/999", "", 404, "action 999 not found"},
		{ta.secrets[ferry.RoleViewer], "GET", "/api/v1/actions/x", "", 400, `id \"x\" is not a positive number`},
		{ta.secrets[ferry.RoleViewer], "GET", "/api/v1/actions?state=%00", "", 400, "NUL"},
		{"", "GET", "/api/v1/actions", "", 401, "unauthorized"},
	} {
		if status, body := ta.do(t, tt.secret, tt.method, tt.path, tt.body); status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s = %d %s, want %d with %s", tt.method, tt.path, status, body, tt.status, tt.want)
		}
	}
}
