package dashboard

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// TestActivityChart: deployments that finished on known days (the
// fixture's clock is 2026-01-02) give each environment's chart its bars:
// a bar per day of the last 14, as tall as its deployments against the
// busiest day, its failed part as tall as its failures; scale
// deployments, unfinished ones and those before the window do not count.
func TestActivityChart(t *testing.T) {
	f := newFixture(t)
	day := func(d int, h int) time.Time { return time.Date(2025, 12, d, h, 0, 0, 0, time.UTC) }
	jan := func(d int, h int) time.Time { return time.Date(2026, 1, d, h, 0, 0, 0, time.UTC) }
	for _, dp := range []struct {
		env      string
		kind     ferry.DeploymentKind
		state    ferry.DeploymentState
		finished time.Time
	}{
		{"prod", ferry.DeployPromote, ferry.DeploymentSucceeded, day(19, 23)}, // the day before the window
		{"prod", ferry.DeployPromote, ferry.DeploymentRolledBack, day(20, 0)},
		{"prod", ferry.DeployPromote, ferry.DeploymentSucceeded, day(31, 9)},
		{"prod", ferry.DeployPromote, ferry.DeploymentSucceeded, day(31, 17)},
		{"prod", ferry.DeployScale, ferry.DeploymentSucceeded, jan(1, 10)},
		{"prod", ferry.DeployPromote, ferry.DeploymentSucceeded, jan(2, 0)},
		{"prod", ferry.DeployPromote, ferry.DeploymentFailed, jan(2, 1)},
		{"prod", ferry.DeployPromote, ferry.DeploymentSucceeded, jan(2, 2)},
		{"prod", ferry.DeployPromote, ferry.DeploymentSucceeded, jan(2, 3)},
		{"prod", ferry.DeployPromote, ferry.DeploymentRolling, time.Time{}},
		{"dev", ferry.DeployDeploy, ferry.DeploymentFailed, jan(1, 12)},
	} {
		d := &ferry.Deployment{App: app, Env: dp.env, Kind: dp.kind, State: dp.state, Commit: commitA, Digest: digestA, Replicas: 1,
			Actor: "ferry", Reason: "test", CreatedAt: dp.finished.Add(-time.Minute), FinishedAt: dp.finished}
		if dp.finished.IsZero() {
			d.CreatedAt = f.now
		} else {
			d.StartedAt = d.CreatedAt
		}
		if err := f.store.CreateDeployment(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	_, body := f.do(ferry.RoleViewer, "GET", "/fragments/activity", nil, nil)
	for _, want := range []string{
		`<figure class="chart" data-env="prod" data-deployments="7" data-failed="2">`,
		`aria-label="prod: 7 deployments, 2 failed, in the 14 days to 2026-01-02"`,
		`<title>prod: 7 deployments, 2 failed, in the 14 days to 2026-01-02</title>`,
		`<figure class="chart" data-env="dev" data-deployments="1" data-failed="1">`,
		`from 2025-12-20 to 2026-01-02`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("activity lacks %s:\n%s", want, body)
		}
	}
	// Every bar of prod, in order: day, deployments, failed, and the
	// heights against the busiest day's 4 deployments in 40 px.
	prod := body[strings.Index(body, `data-env="prod"`):]
	bar := regexp.MustCompile(`data-day="([0-9-]+)" data-deployments="(\d+)" data-failed="(\d+)"><title>[^<]*</title>\s*<rect class="all" x="(\d+)" y="([0-9.]+)" width="8" height="([0-9.]+)"></rect>(?:<rect class="failed" x="\d+" y="([0-9.]+)" width="8" height="([0-9.]+)"></rect>)?`)
	got := map[string]string{}
	var days []string
	for _, m := range bar.FindAllStringSubmatch(prod, -1) {
		days = append(days, m[1])
		got[m[1]] = strings.Join(m[2:], " ")
	}
	if len(days) != 14 || days[0] != "2025-12-20" || days[13] != "2026-01-02" {
		t.Fatalf("prod's bars are for %v, want the 14 days 2025-12-20 … 2026-01-02", days)
	}
	for day, want := range map[string]string{
		"2025-12-20": "1 1 0 30 10 30 10",
		"2025-12-31": "2 0 110 20 20  ",
		"2026-01-01": "0 0 120 40 0  ",
		"2026-01-02": "4 1 130 0 40 30 10",
		"2025-12-21": "0 0 10 40 0  ",
	} {
		if got[day] != want {
			t.Errorf("prod's bar of %s = %q (deployments failed x y h fy fh), want %q", day, got[day], want)
		}
	}
	if !strings.Contains(body, `data-day="2026-01-01" data-deployments="1" data-failed="1"><title>2026-01-01: 1 deployments, 1 failed</title>`) {
		t.Errorf("dev's failed deployment of 2026-01-01 is not its bar:\n%s", body[:strings.Index(body, `data-env="prod"`)])
	}
	_, page := f.do(ferry.RoleViewer, "GET", "/", nil, nil)
	if !strings.Contains(page, `id="activity"`) || !strings.Contains(page, "Deployments per day") {
		t.Error("the page has no activity chart")
	}

	// The charts are read once per state of the controller: a deployment
	// the controller has not announced is not in them, and is once it
	// announces a change.
	d := &ferry.Deployment{App: app, Env: "dev", Kind: ferry.DeployDeploy, State: ferry.DeploymentSucceeded, Commit: commitA, Digest: digestA, Replicas: 1,
		Actor: "ferry", Reason: "test", CreatedAt: jan(2, 4), StartedAt: jan(2, 4), FinishedAt: jan(2, 5)}
	if err := f.store.CreateDeployment(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		notify bool
		want   string
	}{
		{false, `<figure class="chart" data-env="dev" data-deployments="1" data-failed="1">`},
		{true, `<figure class="chart" data-env="dev" data-deployments="2" data-failed="1">`},
	} {
		if step.notify {
			f.envs.changed.Notify()
		}
		if _, body := f.do(ferry.RoleViewer, "GET", "/fragments/activity", nil, nil); !strings.Contains(body, step.want) {
			t.Errorf("after a deployment (change announced: %t) activity lacks %s", step.notify, step.want)
		}
	}
}
