package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// canaryYAML is a dev environment and a gated prod whose strategy block is
// s; prod's strategy starts on line 14.
func canaryYAML(s string) string {
	return head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    runtime: { local: { listen: 127.0.0.1:8082 } }
    strategy:
` + s
}

func TestCanaryDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want *ferry.Canary
	}{
		{"no strategy", canaryYAML("      \n"), nil},
		{"all defaults", canaryYAML("      canary: {}\n"), &ferry.Canary{
			Steps:    []ferry.CanaryStep{{Weight: 5, For: 30 * time.Second}, {Weight: 25, For: time.Minute}, {Weight: 50, For: time.Minute}},
			Baseline: true,
			Analysis: ferry.CanaryAnalysis{Interval: 2 * time.Second, MinRequests: 50, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond, Inconclusive: 5 * time.Minute},
		}},
		{"everything given", canaryYAML(`      canary:
        steps: [ { weight: 10, for: 1m }, { weight: 60 } ]
        baseline: false
        analysis: { interval: 2s, minRequests: 20, maxErrorRate: 0.5%, maxP99: 0s, inconclusive: 1m }
`), &ferry.Canary{
			Steps:    []ferry.CanaryStep{{Weight: 10, For: time.Minute}, {Weight: 60}},
			Analysis: ferry.CanaryAnalysis{Interval: 2 * time.Second, MinRequests: 20, MaxErrorRate: 0.005, Inconclusive: time.Minute},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("ferry.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := c.Environments[1].Canary; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%s) canary = %+v, want %+v", tt.name, got, tt.want)
			}
		})
	}
}

func TestCanaryErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"ungated", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    strategy: { canary: {} }
`, `ferry.yaml:10: environments.dev.strategy.canary: needs from: a canary judges a release, and only an environment that takes promotions gets releases`},
		{"weight over 99", canaryYAML("      canary: { steps: [ { weight: 100, for: 1m } ] }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.steps[0].weight: must be between 1 and 99 (percent of requests to the canary), not 100`},
		{"weight over 50 with a baseline", canaryYAML("      canary: { steps: [ { weight: 25, for: 1m }, { weight: 60, for: 1m } ] }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.steps[1].weight: must be at most 50 with a baseline, not 60: the canary and the baseline each take 60% of the requests, 120% in all (lower the weight, or set baseline: false)`},
		{"weight over 50 with a baseline, baseline given after the steps", canaryYAML(`      canary:
        steps: [ { weight: 51 } ]
        baseline: true
`), `ferry.yaml:15: environments.prod.strategy.canary.steps[0].weight: must be at most 50 with a baseline, not 51: the canary and the baseline each take 51% of the requests, 102% in all (lower the weight, or set baseline: false)`},
		{"weight over 50 with a baseline on kubernetes", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    url: https://prod.example.com
    runtime: { kubernetes: { namespace: prod } }
    strategy:
      canary:
        steps: [ { weight: 75 } ]
        analysis: { prometheus: { url: "http://prometheus:9090", requests: r, errors: e, latency: l } }
`, `ferry.yaml:16: environments.prod.strategy.canary.steps[0].weight: must be at most 50 with a baseline, not 75: the canary and the baseline each take 75% of the requests, 150% in all (lower the weight, or set baseline: false)`},
		{"weight zero", canaryYAML("      canary: { steps: [ { weight: 0 } ] }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.steps[0].weight: must be between 1 and 99 (percent of requests to the canary), not 0`},
		{"weights not increasing", canaryYAML(`      canary:
        steps:
          - { weight: 25, for: 1m }
          - { weight: 10, for: 1m }
`), `ferry.yaml:17: environments.prod.strategy.canary.steps[1].weight: must be more than the step before's 25: weights only go up`},
		{"weight missing", canaryYAML("      canary: { steps: [ { for: 1m } ] }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.steps[0].weight: required`},
		{"no steps", canaryYAML("      canary: { steps: [] }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.steps: at least one step is required (or leave steps out for the defaults)`},
		{"bad step duration", canaryYAML("      canary: { steps: [ { weight: 5, for: 30 } ] }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.steps[0].for: invalid duration "30" (want a number and a unit, like 30s or 10m)`},
		{"percent without sign", canaryYAML("      canary: { analysis: { maxErrorRate: 0.01 } }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.analysis.maxErrorRate: want a percentage like 1% or 0.5%, got "0.01"`},
		{"percent over 100", canaryYAML("      canary: { analysis: { maxErrorRate: 120% } }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.analysis.maxErrorRate: must be between 0% and 100%, not 120%`},
		{"interval zero", canaryYAML("      canary: { analysis: { interval: 0s } }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.analysis.interval: must be positive`},
		{"minRequests zero", canaryYAML("      canary: { analysis: { minRequests: 0 } }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.analysis.minRequests: must be at least 1, not 0`},
		{"inconclusive shorter than interval", canaryYAML("      canary: { analysis: { interval: 10s, inconclusive: 5s } }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.analysis.inconclusive: 5s is shorter than the interval 10s: the canary would pause before its first judgement`},
		{"unknown field", canaryYAML("      canary: { step: [] }\n"),
			`ferry.yaml:14: environments.prod.strategy.canary.step: unknown field (did you mean "steps"?)`},
		{"kubernetes without prometheus", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    url: https://prod.example.com
    runtime: { kubernetes: { namespace: prod } }
    strategy: { canary: {} }
`, `ferry.yaml:14: environments.prod.strategy.canary.analysis.prometheus: required on kubernetes: a canary's figures come from Prometheus there (the local runtime's balancer measures them itself)`},
		{"prometheus query empty", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    url: https://prod.example.com
    runtime: { kubernetes: { namespace: prod } }
    strategy:
      canary:
        analysis: { prometheus: { url: "http://prometheus:9090", requests: r, errors: "", latency: l } }
`, `ferry.yaml:16: environments.prod.strategy.canary.analysis.prometheus.errors: must not be empty: a PromQL query over .Env, .App, .Track, .Version and .Range`},
		{"prometheus template does not parse", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    url: https://prod.example.com
    runtime: { kubernetes: { namespace: prod } }
    strategy:
      canary:
        analysis:
          prometheus:
            url: http://prometheus:9090
            requests: 'sum(increase(http_requests_total{track="{{.Track}}"}[{{.Range}}]))'
            errors: 'sum(increase(http_errors_total{track="{{.Trak}}"}[{{.Range}}]))'
            latency: 'sum by (le) (increase(latency_bucket{version="{{.Version"}[{{.Range}}]))'
`, `ferry.yaml:20: environments.prod.strategy.canary.analysis.prometheus.errors: bad template: executing "errors" at <.Trak>: can't evaluate field Trak in type ferry.CanaryQuery (a template over .Env, .App, .Track, .Version and .Range)
ferry.yaml:21: environments.prod.strategy.canary.analysis.prometheus.latency: bad template: bad character U+0022 '"' (a template over .Env, .App, .Track, .Version and .Range)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("ferry.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse(%s) = nil error, want\n%s", tt.name, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse(%s) error =\n%s\nwant\n%s", tt.name, got, tt.want)
			}
		})
	}
}

// TestCanaryWarnings: a canary on kubernetes without a baseline is judged
// against pods without the version label, which a person must be told.
func TestCanaryWarnings(t *testing.T) {
	c := mustParse(t, "ferry.yaml", head+`environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    url: https://prod.example.com
    runtime: { kubernetes: { namespace: prod } }
    strategy:
      canary:
        baseline: false
        analysis: { prometheus: { url: "http://prometheus:9090", requests: r, errors: e, latency: l } }
`)
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.String())
	}
	want := `ferry.yaml:16: environments.prod.strategy.canary.baseline: on kubernetes the canary is judged against the stable pods, which carry no ferry.dev/version label (ferry does not relabel them): the queries must find the stable track by labels of their own, or they find nothing and every step is inconclusive; keep baseline: true`
	if len(got) != 1 || got[0] != want {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}

// TestPrometheusDocExample parses docs/config.md's worked Kubernetes
// canary as a prod environment's strategy, so the example stays valid.
func TestPrometheusDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "#### `strategy.canary.analysis.prometheus` (Kubernetes)")
	_, block, ok2 := strings.Cut(section, "```yaml\n    strategy:\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/config.md has no yaml block with a strategy under strategy.canary.analysis.prometheus")
	}
	c := mustParse(t, "ferry.yaml", head+`environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    url: https://prod.example.com
    runtime: { kubernetes: { namespace: prod } }
    strategy:
`+block)
	prod, _ := c.Env("prod")
	p := prod.Canary.Analysis.Prometheus
	if len(prod.Canary.Steps) != 3 || p == nil || p.URL != "http://prometheus.monitoring.svc:9090" || !strings.Contains(p.Latency, "_bucket") {
		t.Errorf("the documented canary parsed as %+v (prometheus %+v)", prod.Canary, p)
	}
}

func TestCanaryRedacted(t *testing.T) {
	c, err := Parse("ferry.yaml", []byte(canaryYAML("      canary: { steps: [ { weight: 10, for: 1m } ] }\n")))
	if err != nil {
		t.Fatal(err)
	}
	want := `    strategy:
      canary:
        steps:
          - weight: 10
            for: 1m
        baseline: true
        analysis:
          interval: 2s
          minRequests: 50
          maxErrorRate: 1%
          maxP99: 500ms
          inconclusive: 5m
`
	if got := c.Redacted(); !strings.Contains(got, want) {
		t.Errorf("Redacted() =\n%s\nwant it to hold\n%s", got, want)
	}
}
