package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/cosign"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/leader"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/registry"
	"github.com/jackc/pgx/v5"
)

// redundant is a setup several servers may share: a PostgreSQL ledger, an
// external registry (one distribution registry of its own here), one
// signing key, and dev on the real Kubernetes control plane.
type redundant struct {
	t             testing.TB
	k             *cluster
	repo          *gittest.Repo
	yaml          func(dataDir string) string
	pg            string // the ledger's URL
	devNS, prodNS string
}

func newRedundant(t testing.TB) *redundant {
	t.Helper()
	k := newCluster(t)
	devNS, prodNS := k.Namespace("ferry-standby-dev"), k.Namespace("ferry-standby-prod")
	k.deployment(devNS, "tiny", 2)
	k.deployment(prodNS, "tiny", 2)
	pg := pgtest.NewDatabase(t)

	reg, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	// Its credentials reach every server through the docker
	// configuration, as an external registry's would.
	docker := t.TempDir()
	t.Setenv("DOCKER_CONFIG", docker)
	user, password := reg.Credentials()
	login := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg.Host(), base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	if err := os.WriteFile(filepath.Join(docker, "config.json"), []byte(login), 0o600); err != nil {
		t.Fatal(err)
	}
	keyDir := t.TempDir()
	if _, err := cosign.LoadOrCreateKey(keyDir); err != nil {
		t.Fatal(err)
	}

	repo := newRepo(t, "testdata/tiny")
	t.Setenv("FERRY_TEST_HOOK_SECRET", hookSecret)
	onKube := func(ns string) string {
		return fmt.Sprintf("runtime: { kubernetes: { namespace: %s, deployment: tiny, container: app, kubeconfig: %s } }", ns, k.Kubeconfig)
	}
	return &redundant{t: t, k: k, repo: repo, pg: pg, devNS: devNS, prodNS: prodNS, yaml: func(dataDir string) string {
		y := tinyConfig(repo.Dir, dataDir, "")
		y = strings.Replace(y, "poll: 0 }", "poll: 0, webhookSecret: { env: FERRY_TEST_HOOK_SECRET } }", 1)
		y = strings.Replace(y, "registry: { listen: 127.0.0.1:0 }",
			"ledger: "+pg+"\nregistry: { image: "+reg.Host()+"/tiny }\nsigning: { key: "+filepath.Join(keyDir, cosign.PrivateKeyFile)+" }", 1)
		return strings.Replace(y, "runtime: { local: { listen: 127.0.0.1:0 } }",
			onKube(devNS)+"\n  prod:\n    branch: release\n    from: dev\n    tags: [live]\n    "+onKube(prodNS), 1)
	}}
}

// TestStandbyTakesOver: on a redundant setup a second server stands by
// instead of refusing: it answers reads with the leader's state, names the
// leader, and forwards builds and actions to it. When the leader stops,
// the standby takes over and builds and deploys the next commit; exactly
// one build per commit is recorded.
func TestStandbyTakesOver(t *testing.T) {
	// Not parallel: the registry's credentials are in $DOCKER_CONFIG.
	r := newRedundant(t)
	ctx := context.Background()
	const ttl = 3 * time.Second
	opts := Options{LeaseTTL: ttl, KubePoll: 100 * time.Millisecond}
	a := start(t, r.yaml(t.TempDir()), opts)
	b := start(t, r.yaml(t.TempDir()), opts)
	if b.leadership != nil {
		t.Fatalf("the second server leads in term %d, want it standing by", b.leadership.Term())
	}
	secret := tokenFor(t, a, ferry.RoleAdmin)
	ca, cb := tokenClient(t, a, secret), tokenClient(t, b, secret)

	// The standby names the leader.
	st, err := cb.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader == nil || st.Leader.Holder != a.holder || st.Leader.Address != a.Addr() {
		t.Fatalf("the standby's status names leader %+v, want %s at %s", st.Leader, a.holder, a.Addr())
	}
	if len(st.Environments) != 2 || st.Environments[0].Name != "dev" || st.Environments[1].Name != "prod" {
		t.Fatalf("the standby's status lists %+v, want dev and prod", st.Environments)
	}

	// A build asked of the standby is the leader's.
	first := r.repo.Head()
	res, err := cb.Trigger(ctx, "master", "")
	if err != nil {
		t.Fatalf("trigger through the standby: %v", err)
	}
	if res.Build == nil || res.Build.Commit != first {
		t.Fatalf("trigger through the standby = %+v, want a build of %s", res.Build, ferry.ShortSHA(first))
	}
	if got := waitBuild(t, a, first, 5*time.Minute); got.State != ferry.BuildSucceeded {
		t.Fatalf("the leader's build = %s (%s)", got.State, got.Reason)
	}
	waitDeployed(t, cb, "dev", first) // read through the standby

	// An action asked of the standby is queued and decided by the leader.
	act, err := cb.Lock(ctx, "dev", "standby: lock")
	if err != nil {
		t.Fatalf("lock through the standby: %v", err)
	}
	waitFor(t, 30*time.Second, "the lock asked of the standby to succeed", func() bool {
		body, err := ca.Action(ctx, act.ID)
		return err == nil && body.Action.State == ferry.ActionSucceeded
	})
	if l, err := a.Ledger().LockOf(ctx, "tiny", "dev"); err != nil || l.Reason != "standby: lock" {
		t.Fatalf("dev's lock = %+v, %v; want the one asked of the standby", l, err)
	}
	if _, err := cb.Unlock(ctx, "dev", "standby: unlock"); err != nil {
		t.Fatal(err)
	}

	// A push the standby cannot hand to the leader (its lease names an
	// address nothing answers at) is queued in the ledger, and the leader
	// takes it from there.
	before := first
	r.repo.Write("hooked.txt", "queued\n")
	hooked := r.repo.CommitAll("pushed while the leader did not answer")
	setLeaseAddress(t, r.pg, "127.0.0.1:1")
	payload := githubPush(t, "refs/heads/master", before, hooked)
	code, body := postHook(t, b, "github", http.Header{
		"X-Github-Event": {"push"}, "X-Github-Delivery": {"standby-queued-1"}, "X-Hub-Signature-256": {sign(hookSecret, payload)},
	}, payload)
	if code/100 != 2 {
		t.Fatalf("webhook at the standby while the leader does not answer: %d %s", code, body)
	}
	es, err := b.Ledger().Events(ctx, ledger.EventFilter{App: "tiny", Kind: "webhook.queued"})
	if err != nil || len(es) != 1 || es[0].Commit != hooked {
		t.Fatalf("queued pushes = %+v, %v; want the push of %s", es, err, ferry.ShortSHA(hooked))
	}
	setLeaseAddress(t, r.pg, a.Addr())
	if got := waitBuild(t, a, hooked, 5*time.Minute); got.State != ferry.BuildSucceeded || got.Trigger != "poll" {
		t.Fatalf("the leader's build of the queued push = %s by %q (%s), want succeeded after a poll", got.State, got.Trigger, got.Reason)
	}
	waitDeployed(t, cb, "dev", hooked)

	// The leader stops; the standby takes over.
	stopped := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// (The lease and b.leadership move before b answers as the leader:
	// /readyz says "leader" once its leader's parts answer requests.)
	waitFor(t, 2*ttl, "the standby to lead", func() bool {
		st, err := cb.Status(ctx)
		return err == nil && st.Leader != nil && st.Leader.Holder == b.holder && b.Ledger() != nil && b.leadership != nil &&
			readyz(t, b.URL()).Role == "leader"
	})
	t.Logf("takeover after a clean stop: %s", time.Since(stopped).Round(time.Millisecond))
	if term := b.leadership.Term(); term != 2 {
		t.Errorf("the standby leads in term %d, want 2", term)
	}

	// It builds and deploys the next commit.
	r.repo.Write("release.txt", "after the takeover\n")
	next := r.repo.CommitAll("after the takeover")
	if _, err := cb.Trigger(ctx, "master", ""); err != nil {
		t.Fatalf("trigger on the new leader: %v", err)
	}
	if got := waitBuild(t, b, next, 5*time.Minute); got.State != ferry.BuildSucceeded {
		t.Fatalf("the new leader's build = %s (%s)", got.State, got.Reason)
	}
	waitDeployed(t, cb, "dev", next)
	if image, commit := r.k.image(r.devNS, "tiny"); commit != next || !strings.Contains(image, "@sha256:") {
		t.Errorf("dev's Deployment runs %s of %s, want %s", image, ferry.ShortSHA(commit), ferry.ShortSHA(next))
	}
	builds, err := b.Ledger().Builds(ctx, ledger.BuildFilter{App: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	perCommit := map[string]int{}
	for _, bd := range builds {
		perCommit[bd.Commit]++
	}
	if len(builds) != 3 || perCommit[first] != 1 || perCommit[hooked] != 1 || perCommit[next] != 1 {
		t.Errorf("builds per commit = %v, want one each of %s, %s and %s", perCommit, ferry.ShortSHA(first), ferry.ShortSHA(hooked), ferry.ShortSHA(next))
	}
}

// TestStandbyRefusedWithoutRedundancy: on a setup one server owns (here an
// embedded registry and the local runtime, on a shared PostgreSQL ledger)
// a second server refuses to start, naming each missing part.
func TestStandbyRefusedWithoutRedundancy(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	pg := pgtest.NewDatabase(t)
	yaml := func(dir string) string {
		return strings.Replace(tinyConfig(repo.Dir, dir, ""), "source:", "ledger: "+pg+"\nsource:", 1)
	}
	start(t, yaml(t.TempDir()), Options{})
	err := startErr(t, yaml(t.TempDir()), Options{})
	if ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Fatalf("second start = %v, want a conflict", err)
	}
	for _, want := range []string{"would split the brain", "registry: the embedded registry", "signing.key: unset", "environments.dev.runtime: the local runtime"} {
		if !strings.Contains(ferry.ErrorMessage(err), want) {
			t.Errorf("second start = %q, want it to say %q", ferry.ErrorMessage(err), want)
		}
	}
	if strings.Contains(ferry.ErrorMessage(err), "ledger: a SQLite") {
		t.Errorf("second start blames the ledger, which is PostgreSQL: %q", ferry.ErrorMessage(err))
	}
}

// setLeaseAddress points the lease at addr, as a leader other servers
// cannot reach would look to them.
func setLeaseAddress(t *testing.T, pg, addr string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `UPDATE leases SET address = $1 WHERE app = 'tiny'`, addr); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStandbyReads: the read API's latency answered by a standby,
// against the same calls answered by the leader, on one redundant setup.
func BenchmarkStandbyReads(b *testing.B) {
	r := newRedundant(b)
	ctx := context.Background()
	leaderSrv := start(b, r.yaml(b.TempDir()), Options{KubePoll: 100 * time.Millisecond})
	standbySrv := start(b, r.yaml(b.TempDir()), Options{KubePoll: 100 * time.Millisecond})
	secret := tokenFor(b, leaderSrv, ferry.RoleViewer)
	commit := r.repo.Head()
	if _, err := tokenClient(b, leaderSrv, tokenFor(b, leaderSrv, ferry.RoleAdmin)).Trigger(ctx, "master", ""); err != nil {
		b.Fatal(err)
	}
	waitDeployed(b, tokenClient(b, leaderSrv, secret), "dev", commit)
	for _, role := range []struct {
		name string
		s    *Server
	}{{"leader", leaderSrv}, {"standby", standbySrv}} {
		c := tokenClient(b, role.s, secret)
		for _, call := range []struct {
			name string
			do   func() error
		}{
			{"status", func() error { _, err := c.Status(ctx); return err }},
			{"builds", func() error { _, err := c.Builds(ctx, "", nil, 20); return err }},
			{"deployments", func() error { _, err := c.Deployments(ctx, "dev", 20); return err }},
		} {
			b.Run(role.name+"/"+call.name, func(b *testing.B) {
				for b.Loop() {
					if err := call.do(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestYieldFor: the longer a server stood by before a lease ran out, the
// sooner after it campaigns.
func TestYieldFor(t *testing.T) {
	const ttl = 3 * time.Second // campaigns every 200 ms; handoverWait 400 ms
	for _, tc := range []struct {
		stood time.Duration
		want  time.Duration
	}{
		{-time.Minute, 400 * time.Millisecond}, // began after the lease ran out
		{0, 400 * time.Millisecond},
		{1500 * time.Millisecond, 200 * time.Millisecond},
		{2250 * time.Millisecond, 100 * time.Millisecond},
		{ttl, 0},
		{time.Hour, 0},
	} {
		if got := yieldFor(tc.stood, ttl); got != tc.want {
			t.Errorf("yieldFor(%s, %s) = %s, want %s", tc.stood, ttl, got, tc.want)
		}
	}
	if got := yieldFor(0, leader.DefaultTTL); got != handoverWait(leader.DefaultTTL) {
		t.Errorf("yieldFor(0, %s) = %s, want handoverWait %s", leader.DefaultTTL, got, handoverWait(leader.DefaultTTL))
	}
}
