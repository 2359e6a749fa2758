package prometheus

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/internal/promtest"
)

// TestPrometheus judges canaries on the figures a real Prometheus server
// gives for exporters standing in for the canary's and the baseline's
// pods: a canary failing 5 % of its requests fails; one 200 ms slower
// fails; an A/A pair passes; no traffic is zero requests, inconclusive.
func TestPrometheus(t *testing.T) {
	steady := func(i int) time.Duration { return time.Duration(i%4) * 2 * time.Millisecond }
	slow := func(i int) time.Duration { return 200*time.Millisecond + steady(i) }
	type pair struct {
		name                    string
		baseVersion, canVersion string
		baseFail, canFail       int
		baseDelay, canDelay     func(int) time.Duration
		requests, workers       int
		want                    analysis.Outcome
		reason                  string
		base, can               *promtest.Exporter
	}
	pairs := []*pair{
		{name: "5 % errors", baseVersion: "ba5e00000001", canVersion: "c0ffee000001", canFail: 20, baseDelay: steady, canDelay: steady,
			requests: 400, workers: 8, want: analysis.Fail, reason: "is over the limit 1.00%"},
		{name: "200 ms slower", baseVersion: "ba5e00000002", canVersion: "c0ffee000002", baseDelay: steady, canDelay: slow,
			requests: 200, workers: 50, want: analysis.Fail, reason: "slower than the baseline"},
		{name: "A/A", baseVersion: "aa0000000003", canVersion: "aa0000000003", baseDelay: steady, canDelay: steady,
			requests: 400, workers: 8, want: analysis.Pass},
		{name: "no traffic", baseVersion: "ba5e00000004", canVersion: "c0ffee000004", want: analysis.Inconclusive, reason: "too few requests to judge: canary 0, baseline 0"},
	}
	start := time.Now()
	var targets []string
	for _, p := range pairs {
		p.base = promtest.NewExporter(t, "birthday", ferry.TrackBaseline, p.baseVersion, p.baseFail, p.baseDelay)
		p.can = promtest.NewExporter(t, "birthday", ferry.TrackCanary, p.canVersion, p.canFail, p.canDelay)
		targets = append(targets, p.base.Target(), p.can.Target())
	}
	base := promtest.Start(t, targets)
	t.Logf("prometheus at %s scraped %d exporters after %s", base, len(targets), time.Since(start).Round(time.Millisecond))
	limits := analysis.Limits{MinRequests: 50, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond}
	q := promtest.Queries(base)

	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			if p.requests > 0 {
				var wg sync.WaitGroup
				for _, e := range []*promtest.Exporter{p.base, p.can} {
					wg.Go(func() { e.Load(t, p.requests, p.workers) })
				}
				wg.Wait()
				promtest.WaitScraped(t, base, ferry.TrackBaseline, p.baseVersion, p.requests)
				promtest.WaitScraped(t, base, ferry.TrackCanary, p.canVersion, p.requests)
				// increase() extrapolates the counters' average slope
				// to the end of the span: with the load in the last of
				// only two samples, by up to half again. A few more
				// scrapes make it at most a third.
				time.Sleep(3 * time.Second)
			}
			src, err := New(Config{
				Prometheus: q, Env: "prod", App: "birthday",
				Versions: map[string]string{ferry.TrackBaseline: p.baseVersion, ferry.TrackCanary: p.canVersion},
				Start:    start,
			})
			if err != nil {
				t.Fatal(err)
			}
			figs, err := src.Figures(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			b, c := figs[ferry.TrackBaseline], figs[ferry.TrackCanary]
			t.Logf("baseline %d requests, %d errors, p50 %s, p99 %s; canary %d requests, %d errors, p50 %s, p99 %s",
				b.Requests, b.Errors, b.Latency.Quantile(0.5), b.Latency.Quantile(0.99), c.Requests, c.Errors, c.Latency.Quantile(0.5), c.Latency.Quantile(0.99))
			// increase() extrapolates to the end of the span by up to a
			// scrape interval: the counts may be over what was served,
			// never under.
			for _, f := range []analysis.Figures{b, c} {
				if f.Requests < int64(p.requests) || f.Requests > int64(p.requests)*3/2 ||
					f.Latency.Count() < int64(p.requests) || f.Latency.Count() > int64(p.requests)*3/2 {
					t.Errorf("figures %d requests, %d in the histogram; want %d served, give or take the extrapolation", f.Requests, f.Latency.Count(), p.requests)
				}
			}
			if p.canFail > 0 {
				if r := float64(c.Errors) / float64(c.Requests); r < 0.04 || r > 0.06 {
					t.Errorf("canary error rate %.3f (%d of %d), want 5 %%", r, c.Errors, c.Requests)
				}
			}
			v := analysis.Judge(limits, b, c)
			t.Logf("verdict %s: %v", v.Outcome, v.Reasons)
			if v.Outcome != p.want || p.reason != "" && !strings.Contains(strings.Join(v.Reasons, "; "), p.reason) {
				t.Errorf("Judge = %s %q, want %s %q", v.Outcome, v.Reasons, p.want, p.reason)
			}
		})
	}

	// A version no pod runs: every query finds no series.
	src, err := New(Config{Prometheus: q, App: "birthday", Versions: map[string]string{ferry.TrackCanary: "000000000000"}, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	if figs, err := src.Figures(context.Background()); err != nil || figs[ferry.TrackCanary] != (analysis.Figures{}) {
		t.Errorf("Figures of a version nothing runs = %+v, %v; want zero", figs, err)
	}
	// A query Prometheus refuses, with its reason.
	bad := q
	bad.Requests = `sum(increase(app_http_requests_total{version="{{.Version}}"}))`
	if src, err = New(Config{Prometheus: bad, Versions: map[string]string{ferry.TrackCanary: "c0ffee000001"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Figures(context.Background()); ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "bad_data (400 Bad Request)") ||
		!strings.Contains(err.Error(), "prometheus at "+base+", query "+`sum(increase(app_http_requests_total{version="c0ffee000001"}))`) {
		t.Errorf("Figures with a query prometheus refuses = %v", err)
	}
}
