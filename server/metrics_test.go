package server

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/source"
)

// promtool returns the promtool to check expositions with
// (FERRY_TEST_PROMTOOL, else promtool on PATH). Without one the test is
// skipped, or fails when FERRY_TEST_REQUIRE names promtool.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FERRY_TEST_PROMTOOL"); p != "" {
		return p
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	testenv.Unavailable(t, "promtool", "no promtool: set FERRY_TEST_PROMTOOL or put promtool on PATH")
	return ""
}

// TestMetrics runs a real ferry with dev and prod, builds and deploys a
// commit to dev, promotes it to prod, and scrapes /metrics: with a viewer
// token only, in a format promtool accepts, with each series and its
// labels saying what the ledger says.
func TestMetrics(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	runtime := `runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`
	yaml := withTest(tinyConfig(repo.Dir, t.TempDir(), ""), "")
	yaml = strings.Replace(yaml, "runtime: { local: { listen: 127.0.0.1:0 } }", runtime, 1) + "  prod:\n    from: dev\n    " + runtime + "\n"
	s := start(t, yaml, Options{})
	c := newClient(t, s)
	ctx := context.Background()
	head := repo.Head()
	build := waitBuild(t, s, head, 3*time.Minute)
	if build.State != ferry.BuildSucceeded {
		t.Fatalf("build of %s = %s: %s", ferry.ShortSHA(head), build.State, build.Reason)
	}
	waitDeployed(t, c, "dev", head)
	d, err := c.Promote(ctx, "prod", "", "metrics test")
	if err != nil {
		t.Fatal(err)
	}
	promoted := waitFinished(t, c, deploymentOf(t, c, d))

	scrape := func(secret string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, s.URL()+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for _, secret := range []string{"", "ferry_unknown"} {
		if code, _, body := scrape(secret); code != http.StatusUnauthorized || strings.Contains(body, "ferry_builds_total") {
			t.Errorf("GET /metrics with token %q = %d %.200s, want 401 and no metrics", secret, code, body)
		}
	}
	code, ctype, body := scrape(tokenFor(t, s, ferry.RoleViewer))
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") {
		t.Fatalf("GET /metrics with a viewer token = %d %s\n%s", code, ctype, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}

	// value finds the one series of name with exactly labels.
	value := func(name string, labels map[string]string) (*dto.Metric, bool) {
		for _, m := range families[name].GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if len(got) == len(labels) && func() bool {
				for k, v := range labels {
					if got[k] != v {
						return false
					}
				}
				return true
			}() {
				return m, true
			}
		}
		return nil, false
	}
	number := func(m *dto.Metric) float64 {
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
		return math.NaN()
	}
	git := source.Open(repo.Dir, t.TempDir(), nil)
	if err := git.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	commit, err := git.Commit(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	lead := promoted.FinishedAt.Sub(commit.Time).Seconds() // prod's first release: its own commit
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64 // the value, or a histogram's count
	}{
		{"ferry_builds_total", map[string]string{"branch": "master", "result": "succeeded"}, 1},
		{"ferry_build_duration_seconds", map[string]string{"branch": "master"}, 1},
		{"ferry_deployments_total", map[string]string{"env": "dev", "kind": "deploy", "result": "succeeded"}, 1},
		{"ferry_deployments_total", map[string]string{"env": "prod", "kind": "promote", "result": "succeeded"}, 1},
		{"ferry_rollout_duration_seconds", map[string]string{"env": "dev"}, 1},
		{"ferry_rollout_duration_seconds", map[string]string{"env": "prod"}, 1},
		{"ferry_environment_info", map[string]string{"env": "dev", "commit": head, "release": "", "digest": build.Digest}, 1},
		{"ferry_environment_info", map[string]string{"env": "prod", "commit": head, "release": promoted.Release, "digest": build.Digest}, 1},
		{"ferry_environment_replicas", map[string]string{"env": "dev", "state": "desired"}, 1},
		{"ferry_environment_replicas", map[string]string{"env": "dev", "state": "ready"}, 1},
		{"ferry_environment_replicas", map[string]string{"env": "prod", "state": "desired"}, 1},
		{"ferry_environment_replicas", map[string]string{"env": "prod", "state": "ready"}, 1},
		{"ferry_dora_deployments_per_day", map[string]string{"env": "prod"}, 1.0 / 30},
		{"ferry_dora_lead_time_seconds", map[string]string{"env": "prod"}, lead},
		{"ferry_dora_change_failure_rate", map[string]string{"env": "prod"}, 0},
		{"ferry_dora_time_to_restore_seconds", map[string]string{"env": "prod"}, 0},
	} {
		m, ok := value(tc.name, tc.labels)
		if !ok {
			t.Errorf("/metrics has no %s%v", tc.name, tc.labels)
			continue
		}
		if got := number(m); math.Abs(got-tc.want) > 1e-6*math.Max(1, math.Abs(tc.want)) {
			t.Errorf("/metrics %s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// Each replica, from its runtime: under runc as root, with its
	// cgroup's limit.
	for _, env := range []string{"dev", "prod"} {
		isolation, limit := ferry.IsolationProcess, 0.0
		if os.Geteuid() == 0 {
			isolation, limit = ferry.IsolationRunc, ferry.DefaultMemory
		}
		var found int
		for _, m := range families["ferry_replica_info"].GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["env"] != env {
				continue
			}
			found++
			if l["isolation"] != isolation || l["state"] != ferry.ReplicaRunning {
				t.Errorf("ferry_replica_info%v, want isolation %s, state running", l, isolation)
			}
			if m, ok := value("ferry_replica_memory_limit_bytes", map[string]string{"env": env, "replica": l["replica"]}); limit > 0 && (!ok || number(m) != limit) {
				t.Errorf("ferry_replica_memory_limit_bytes{%s} = %v (%v), want %v", l["replica"], m, ok, limit)
			}
		}
		if found != 1 {
			t.Errorf("/metrics has %d ferry_replica_info of %s, want 1", found, env)
		}
	}
	if promoted.Release == "" || lead <= 0 {
		t.Errorf("prod's release %q, lead time %vs: want a release tag and a positive lead time", promoted.Release, lead)
	}
	if h, ok := value("ferry_rollout_duration_seconds", map[string]string{"env": "prod"}); ok {
		if want := promoted.FinishedAt.Sub(promoted.StartedAt).Seconds(); math.Abs(h.GetHistogram().GetSampleSum()-want) > 1e-6 {
			t.Errorf("ferry_rollout_duration_seconds_sum{env=prod} = %v, want %v", h.GetHistogram().GetSampleSum(), want)
		}
	}
	// Only prod is production; every series is ferry's or the Go
	// runtime's and the process's.
	if _, ok := value("ferry_dora_lead_time_seconds", map[string]string{"env": "dev"}); ok {
		t.Errorf("/metrics has DORA figures for dev, which is not production")
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := families[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}
	for name := range families {
		if !strings.HasPrefix(name, "ferry_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("/metrics has %s, from outside ferry's registry", name)
		}
	}

	t.Run("promtool", func(t *testing.T) {
		cmd := exec.Command(promtool(t), "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out.String())
		}
	})
}
