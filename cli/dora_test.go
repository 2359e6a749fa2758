package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// doraEnvs names the environments; the dora route needs nothing else of
// them.
type doraEnvs struct{}

func (doraEnvs) Names() []string { return []string{"dev", "prod"} }
func (doraEnvs) Environment(name string) (ferry.Environment, bool) {
	return ferry.Environment{Name: name}, name == "dev" || name == "prod"
}
func (doraEnvs) Status(context.Context) ([]controller.EnvStatus, error) {
	return nil, ferry.Errorf(ferry.EUNAVAILABLE, "no controller in this test")
}
func (doraEnvs) Check(context.Context) ([]controller.Drift, error) {
	return nil, ferry.Errorf(ferry.EUNAVAILABLE, "no controller in this test")
}
func (doraEnvs) Logs(context.Context, string, io.Writer, int, bool) error {
	return ferry.Errorf(ferry.EUNAVAILABLE, "no controller in this test")
}
func (doraEnvs) Scale(context.Context, string, int, string, string) (*ferry.Deployment, error) {
	return nil, ferry.Errorf(ferry.EUNAVAILABLE, "no controller in this test")
}

// TestDoraCommand runs `ferry dora` against the real API route over a
// SQLite ledger with a release history and a git repository of its
// commits.
func TestDoraCommand(t *testing.T) {
	useCredentials(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := gittest.New(t)
	commit := func(at time.Time) string { return r.Commit("change", at) }
	c1 := commit(now.Add(-10 * 24 * time.Hour))
	commit(now.Add(-50 * time.Hour)) // c2, released with c3
	c3 := commit(now.Add(-49 * time.Hour))
	repo := r.Source()

	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// prod: c1 released 8 days ago; c3 (with c2) 48h ago, undone by a
	// rollback 45 minutes later; c3 again 24h ago.
	for _, d := range []struct {
		kind   ferry.DeploymentKind
		commit string
		ago    time.Duration
	}{
		{ferry.DeployPromote, c1, 8 * 24 * time.Hour},
		{ferry.DeployPromote, c3, 48 * time.Hour},
		{ferry.DeployRollback, c1, 48*time.Hour - 45*time.Minute},
		{ferry.DeployPromote, c3, 24 * time.Hour},
	} {
		at := now.Add(-d.ago)
		dep := &ferry.Deployment{App: "app", Env: "prod", Kind: d.kind, State: ferry.DeploymentSucceeded, Commit: d.commit,
			Digest: "sha256:" + strings.Repeat(d.commit[:16], 4), Actor: "test", CreatedAt: at, StartedAt: at, FinishedAt: at}
		if err := store.CreateDeployment(t.Context(), dep); err != nil {
			t.Fatal(err)
		}
	}
	tokens := &auth.Tokens{Store: store, App: "app"}
	_, viewer, err := tokens.Create(t.Context(), "eye", ferry.RoleViewer, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&api.Server{
		App: "app", Ledger: store, Envs: doraEnvs{}, Deployments: store, Tokens: tokens, Logger: slog.New(slog.DiscardHandler),
		Dora: &dora.Reporter{App: "app", Envs: []ferry.Environment{{Name: "dev"}, {Name: "prod", From: "dev"}}, Ledger: store,
			Commits: dora.NewGitCommits(repo).WithContext, Now: func() time.Time { return now }},
	}).Handler())
	defer srv.Close()
	flags := []string{"--server", srv.URL, "--token", viewer}

	// JSON: the route's body. Over 30 days: 3 changes; the first has only
	// its own commit (9d… after c1: 2d), c3's first release brings c2 and
	// c3 (2h, 1h), its second again (26h, 25h) after the rollback.
	stdout, stderr, code := run(t, append([]string{"dora", "-o", "json"}, flags...)...)
	if code != 0 {
		t.Fatalf("ferry dora -o json: exit %d: %s", code, stderr)
	}
	var body api.DoraBody
	if err := json.Unmarshal([]byte(stdout), &body); err != nil {
		t.Fatalf("ferry dora -o json: %v\n%s", err, stdout)
	}
	want := dora.Report{
		Env: "prod", From: now.Add(-30 * 24 * time.Hour), To: now,
		Deployments: 3, DeploymentsPerDay: 0.1, LeadTimeSeconds: 25 * 3600, LeadTimeSamples: 5,
		ChangeFailureRate: 1.0 / 3, Failures: 1, Changes: 3, TimeToRestoreSeconds: 45 * 60, Restores: 1,
	}
	if len(body.Reports) != 1 || body.Reports[0] != want {
		t.Errorf("ferry dora -o json = %+v, want [%+v]", body.Reports, want)
	}
	for _, key := range []string{`"deploymentsPerDay": 0.1`, `"leadTimeSeconds": 90000`, `"changeFailureRate": 0.3333333333333333`, `"timeToRestoreSeconds": 2700`} {
		if !strings.Contains(stdout, key) {
			t.Errorf("ferry dora -o json lacks %s:\n%s", key, stdout)
		}
	}

	// The table, humanized.
	stdout, stderr, code = run(t, append([]string{"dora"}, flags...)...)
	if code != 0 {
		t.Fatalf("ferry dora: exit %d: %s", code, stderr)
	}
	for _, line := range []string{
		"DORA figures over 30d: 2026-05-02 12:00 to 2026-06-01 12:00 UTC",
		"ENV   DEPLOYMENTS  PER DAY  LEAD TIME         CHANGE FAILURE RATE     TIME TO RESTORE",
		"prod  3            0.10     1d1h (5 commits)  33.3% (1 of 3 changes)  45m (1 restore)",
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("ferry dora printed\n%s\nwant a line %q", stdout, line)
		}
	}
	stdout, _, code = run(t, append([]string{"dora", "--env", "dev", "--window", "2w", "-o", "yaml"}, flags...)...)
	if code != 0 || !strings.Contains(stdout, "env: dev") || !strings.Contains(stdout, "deployments: 0") || !strings.Contains(stdout, "from: \"2026-05-18T12:00:00Z\"") {
		t.Errorf("ferry dora --env dev --window 2w -o yaml = exit %d\n%s", code, stdout)
	}
	if stdout, _, _ := run(t, append([]string{"dora", "--env", "dev"}, flags...)...); !strings.Contains(stdout, "dev  0            0.00     -          -                    -") {
		t.Errorf("ferry dora --env dev printed\n%s\nwant dashes for the figures without samples", stdout)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--window", "30"}, 2, `--window: window "30" is not a duration like 30d, 2w, 36h or 90m`},
		{[]string{"--window", "2y"}, 2, "--window"},
		{[]string{"--env", "prdo"}, 1, `no environment "prdo" (have dev, prod)`},
		{[]string{"-o", "xml"}, 2, "unknown output format"},
		{[]string{"prod"}, 1, "unknown command"},
	} {
		_, stderr, code := run(t, append(append([]string{"dora"}, tc.args...), flags...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("ferry dora %s = exit %d, %q; want exit %d with %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

func TestHumanSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0s"}, {0.4, "0s"}, {45, "45s"}, {60, "1m"}, {750, "12m30s"}, {3600, "1h"},
		{5*3600 + 12*60 + 59, "5h12m"}, {90000, "1d1h"}, {3 * 86400, "3d"}, {400 * 86400, "400d"},
	} {
		if got := humanSeconds(tc.in); got != tc.want {
			t.Errorf("humanSeconds(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
