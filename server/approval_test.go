package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// TestApprovalThroughTheServer: dev → staging → prod, prod with
// approval: in ferry.yaml; a promotion
// by one token waits as a pending release; the same token, and a viewer,
// are refused with the reason and prod runs nothing; a second releaser's
// approval releases it through the real server, runtime and ledger, the
// requester and the approver recorded. It logs the time from the approval
// to prod serving the digest on every replica. A receiver of
// notifications on loopback hears the pending approval, the approval and
// the release, each signed.
func TestApprovalThroughTheServer(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		topics []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte("hook-secret"))
		mac.Write(body)
		if r.Header.Get("X-Ferry-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p struct{ Topic, Env string }
		json.Unmarshal(body, &p)
		mu.Lock()
		topics = append(topics, p.Topic+":"+p.Env)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	heard := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(topics, " ")
	}
	repo := newRepo(t, "testdata/tiny")
	yaml := strings.Replace(tinyConfig(repo.Dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }",
		`runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }
  staging:
    from: dev
    runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }
  prod:
    branch: release
    from: staging
    approval: { required: 1, role: releaser, expires: 1h }
    runtime: { local: { listen: 127.0.0.1:0, replicas: 2, readiness: /version, args: ["-listen", "{{.Addr}}"] } }
notifications:
  - { name: ops, url: "`+hook.URL+`", secret: { env: HOOK_SECRET }, envs: [prod] }`, 1)
	s := start(t, yaml, Options{Getenv: func(k string) string {
		if k == "HOOK_SECRET" {
			return "hook-secret"
		}
		return ""
	}})
	ctx := context.Background()
	alice := tokenClient(t, s, namedToken(t, s, "alice", ferry.RoleReleaser))
	bob := tokenClient(t, s, namedToken(t, s, "bob", ferry.RoleReleaser))
	vic := tokenClient(t, s, namedToken(t, s, "vic", ferry.RoleViewer))

	a := repo.Head()
	waitDeployed(t, alice, "dev", a)
	// Three stages: staging takes it without approval, prod only with one.
	st, err := alice.Promote(ctx, "staging", "", "to staging")
	if err != nil {
		t.Fatal(err)
	}
	waitFinished(t, alice, deploymentOf(t, alice, st))
	act, err := alice.Promote(ctx, "prod", "", "first release")
	if err != nil {
		t.Fatal(err)
	}
	got, err := alice.Decided(ctx, act.ID, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got.Action.State != ferry.ActionSucceeded || got.Action.DeploymentID != 0 || !strings.Contains(got.Action.Result, "pending approval: release request 1") {
		t.Fatalf("promote = %s %q (deployment %d), want a pending release", got.Action.State, got.Action.Result, got.Action.DeploymentID)
	}
	pending, err := vic.Requests(ctx, "prod", []ferry.RequestState{ferry.RequestPending}, 10)
	if err != nil || len(pending) != 1 || pending[0].Requester != "alice" || pending[0].Commit != a {
		t.Fatalf("pending requests = %+v, %v; want alice's of %s", pending, err, ferry.ShortSHA(a))
	}
	id := pending[0].ID
	if _, err := alice.Approve(ctx, id, ""); ferry.ErrorCode(err) != ferry.EFORBIDDEN || !strings.Contains(ferry.ErrorMessage(err), "self-approval is refused: alice asked for release request 1") {
		t.Errorf("alice's own approval = %v, want 403 self-approval", err)
	}
	if _, err := vic.Approve(ctx, id, ""); ferry.ErrorCode(err) != ferry.EFORBIDDEN {
		t.Errorf("a viewer's approval = %v, want 403", err)
	}
	if ds, err := s.Ledger().Deployments(ctx, ledger.DeploymentFilter{App: "tiny", Env: "prod"}); err != nil || len(ds) != 0 {
		t.Fatalf("prod deployments after refusals = %d, %v; want none", len(ds), err)
	}

	approvedAt := time.Now()
	b, err := bob.Approve(ctx, id, "reviewed")
	if err != nil {
		t.Fatal(err)
	}
	if b.Request.State != ferry.RequestApproved || b.Action == nil {
		t.Fatalf("bob's approval = %+v, want approved with its action", b)
	}
	d := waitFinished(t, bob, deploymentOf(t, bob, b.Action))
	took := time.Since(approvedAt)
	if d.Actor != "alice" || !strings.Contains(d.Reason, "requested by alice, approved by bob (release request 1): first release") || d.Commit != a {
		t.Errorf("release = actor %s, reason %q, commit %s; want alice's, approved by bob, of %s", d.Actor, d.Reason, ferry.ShortSHA(d.Commit), ferry.ShortSHA(a))
	}
	status, err := bob.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status.Environments) != 3 {
		t.Errorf("status lists %d environments, want dev, staging and prod", len(status.Environments))
	}
	for _, e := range status.Environments {
		if e.Name == "prod" && (e.Commit != a || e.Replicas.Ready != 2) {
			t.Errorf("prod status = %s with %d ready, want %s on 2", ferry.ShortSHA(e.Commit), e.Replicas.Ready, ferry.ShortSHA(a))
		}
	}
	t.Logf("approval to prod on the new digest (2 replicas, rollout included): %s (rollout itself %s)", took.Round(time.Millisecond), d.FinishedAt.Sub(d.StartedAt).Round(time.Millisecond))
	if _, err := bob.Approve(ctx, id, ""); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("a second approval = %v, want 409", err)
	}
	want := "pending-approval:prod approved:prod released:prod"
	deadline := time.Now().Add(30 * time.Second)
	for heard() != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := heard(); got != want {
		t.Errorf("the receiver heard %q, want %q", got, want)
	}
	// The receiver answers before the dispatcher records the delivery.
	var ns []*ferry.Notification
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ns, err = vic.Notifications(ctx, "ops", nil, 10); err != nil || (len(ns) == 3 && ns[0].State == ferry.NotificationDelivered) {
			break
		}
	}
	if err != nil || len(ns) != 3 || ns[0].State != ferry.NotificationDelivered {
		t.Errorf("GET /api/v1/notifications = %d, %v; want 3, delivered", len(ns), err)
	}
}
