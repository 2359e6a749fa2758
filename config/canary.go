package config

import (
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ferryhq/ferry"
)

// The defaults of strategy.canary, applied here once (docs/config.md).
var defaultCanarySteps = []ferry.CanaryStep{
	{Weight: 5, For: 30 * time.Second},
	{Weight: 25, For: time.Minute},
	{Weight: 50, For: time.Minute},
}

const (
	// defaultCanaryInterval is how often a canary is judged: 2 s, about
	// when a 5 % canary at 500 req/s has its minRequests. Judging costs
	// nothing on the local runtime, and a judgement weighs everything
	// since the first step, so a shorter interval only looks sooner: at
	// 5 s, a release failing 5 % served 0.17 % failed requests at
	// 500 req/s before its first judgement aborted it.
	defaultCanaryInterval     = 2 * time.Second
	defaultCanaryMinRequests  = 50
	defaultCanaryMaxErrorRate = 0.01
	defaultCanaryMaxP99       = 500 * time.Millisecond
	// defaultCanaryInconclusive is how long a step may stay inconclusive
	// (too little traffic to judge) before the canary pauses for a person:
	// five minutes, longer than any default step, so that a quiet hour
	// pauses a release rather than stretching it without end.
	defaultCanaryInconclusive = 5 * time.Minute
)

// maxBaselineWeight is the most a step may send to the canary when a
// baseline takes as much again.
const maxBaselineWeight = 50

// sampleQuery is what a Prometheus template is tried with at parse.
var sampleQuery = ferry.CanaryQuery{Env: "prod", App: "demo", Track: ferry.TrackCanary, Version: "0123456789ab", Range: "5s"}

// strategy decodes an environment's strategy block: only a gated
// environment takes a canary, since only a release is judged before it
// takes all requests.
func (d *decoder) strategy(env *object, e *Environment) *ferry.Canary {
	if !env.has("strategy") {
		return nil
	}
	o := d.object(env.key("strategy"), env.node("strategy"), env.field("strategy"), "canary")
	if !o.has("canary") {
		return nil
	}
	if e.From == "" {
		d.errorf(o.key("canary"), o.field("canary"), "needs from: a canary judges a release, and only an environment that takes promotions gets releases")
	}
	c := d.object(o.key("canary"), o.node("canary"), o.field("canary"), "steps", "baseline", "analysis")
	out := &ferry.Canary{Baseline: true}
	if c.has("baseline") {
		out.Baseline = c.boolean("baseline")
	}
	out.Steps = d.canarySteps(c, out.Baseline)
	if !out.Baseline && e.Runtime.Kubernetes != nil {
		d.warnf(c.node("baseline"), c.field("baseline"), "on kubernetes the canary is judged against the stable pods, which carry no ferry.dev/version label "+
			"(ferry does not relabel them): the queries must find the stable track by labels of their own, or they find nothing and every step is inconclusive; keep baseline: true")
	}
	out.Analysis = d.canaryAnalysis(c, e)
	return out
}

// canarySteps decodes the steps. With a baseline, the canary and the
// baseline each take a step's weight, so a weight over 50 asks for more
// than every request; both runtimes refuse such a split, and it is refused
// here, at parse, rather than half-way through a release.
func (d *decoder) canarySteps(c *object, baseline bool) []ferry.CanaryStep {
	if !c.has("steps") {
		return append([]ferry.CanaryStep(nil), defaultCanarySteps...)
	}
	items := c.list("steps")
	if len(items) == 0 && c.node("steps").Kind == yaml.SequenceNode {
		d.errorf(c.node("steps"), c.field("steps"), "at least one step is required (or leave steps out for the defaults)")
	}
	var out []ferry.CanaryStep
	last := 0
	for _, it := range items {
		s := d.object(it.val, it.val, it.path, "weight", "for")
		if !s.has("weight") {
			s.missing("weight")
			continue
		}
		st := ferry.CanaryStep{Weight: s.integer("weight", 0), For: s.duration("for", 0, false)}
		switch {
		case st.Weight < 1 || st.Weight > 99:
			d.errorf(s.node("weight"), s.field("weight"), "must be between 1 and 99 (percent of requests to the canary), not %d", st.Weight)
		case baseline && st.Weight > maxBaselineWeight:
			d.errorf(s.node("weight"), s.field("weight"), "must be at most %d with a baseline, not %d: the canary and the baseline each take %d%% of the requests, %d%% in all (lower the weight, or set baseline: false)",
				maxBaselineWeight, st.Weight, st.Weight, 2*st.Weight)
		case st.Weight <= last:
			d.errorf(s.node("weight"), s.field("weight"), "must be more than the step before's %d: weights only go up", last)
		}
		last = max(last, st.Weight)
		out = append(out, st)
	}
	return out
}

func (d *decoder) canaryAnalysis(c *object, e *Environment) ferry.CanaryAnalysis {
	a := d.object(c.key("analysis"), c.node("analysis"), c.field("analysis"), "interval", "minRequests", "maxErrorRate", "maxP99", "inconclusive", "prometheus")
	out := ferry.CanaryAnalysis{
		Interval:     a.duration("interval", defaultCanaryInterval, true),
		MinRequests:  int64(a.integer("minRequests", defaultCanaryMinRequests)),
		MaxErrorRate: a.percent("maxErrorRate", defaultCanaryMaxErrorRate),
		MaxP99:       a.duration("maxP99", defaultCanaryMaxP99, false),
		Inconclusive: a.duration("inconclusive", defaultCanaryInconclusive, true),
	}
	if out.MinRequests < 1 {
		d.errorf(a.node("minRequests"), a.field("minRequests"), "must be at least 1, not %d", out.MinRequests)
	}
	if a.has("interval") && a.has("inconclusive") && out.Inconclusive < out.Interval {
		d.errorf(a.node("inconclusive"), a.field("inconclusive"), "%s is shorter than the interval %s: the canary would pause before its first judgement", out.Inconclusive, out.Interval)
	}
	out.Prometheus = d.prometheus(a, e)
	return out
}

// prometheus decodes where a canary on Kubernetes reads its figures; the
// local runtime's balancer measures them itself.
func (d *decoder) prometheus(a *object, e *Environment) *ferry.CanaryPrometheus {
	kube := e.Runtime.Kubernetes != nil
	if !a.has("prometheus") {
		if kube {
			d.errorf(a.at, a.field("prometheus"), "required on kubernetes: a canary's figures come from Prometheus there (the local runtime's balancer measures them itself)")
		}
		return nil
	}
	p := d.object(a.key("prometheus"), a.node("prometheus"), a.field("prometheus"), "url", "requests", "errors", "latency")
	if !kube {
		d.warnf(a.key("prometheus"), a.field("prometheus"), "ignored on the local runtime: its balancer measures each track's figures itself")
	}
	out := &ferry.CanaryPrometheus{URL: p.str("url"), Requests: p.str("requests"), Errors: p.str("errors"), Latency: p.str("latency")}
	if !p.has("url") {
		p.missing("url")
	} else if msg := urlProblem(out.URL); msg != "" {
		d.errorf(p.node("url"), p.field("url"), "%s", msg)
	}
	for _, q := range []struct{ field, text string }{{"requests", out.Requests}, {"errors", out.Errors}, {"latency", out.Latency}} {
		if !p.has(q.field) {
			p.missing(q.field)
			continue
		}
		if strings.TrimSpace(q.text) == "" {
			d.errorf(p.node(q.field), p.field(q.field), "must not be empty: a PromQL query over .Env, .App, .Track, .Version and .Range")
			continue
		}
		if _, err := ferry.Render(q.field, q.text, sampleQuery); err != nil {
			d.errorf(p.node(q.field), p.field(q.field), "%v (a template over .Env, .App, .Track, .Version and .Range)", err)
		}
	}
	return out
}

// percent reads a percentage written with its sign ("1%", "0.5%") as a
// fraction of 1, between 0 and 100 %.
func (o *object) percent(name string, def float64) float64 {
	n := o.node(name)
	if n == nil {
		return def
	}
	num, ok := strings.CutSuffix(strings.TrimSpace(n.Value), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	switch {
	case n.Kind != yaml.ScalarNode || !ok || err != nil:
		o.d.errorf(n, o.field(name), "want a percentage like 1%% or 0.5%%, got %s", describe(n))
		return def
	case v < 0 || v > 100:
		o.d.errorf(n, o.field(name), "must be between 0%% and 100%%, not %s", n.Value)
		return def
	}
	return v / 100
}

// canaryView is strategy.canary as Redacted shows it, defaults included.
func canaryView(c *ferry.Canary) *yaml.Node {
	if c == nil {
		return nil
	}
	steps := make([]*yaml.Node, len(c.Steps))
	for i, s := range c.Steps {
		steps[i] = mapping("weight", integer(s.Weight), "for", str(formatDuration(s.For)))
	}
	a := c.Analysis
	var prom *yaml.Node
	if p := a.Prometheus; p != nil {
		prom = mapping("url", str(redactURL(p.URL)), "requests", str(p.Requests), "errors", str(p.Errors), "latency", str(p.Latency))
	}
	return mapping("canary", mapping(
		"steps", list(steps...),
		"baseline", boolean(c.Baseline),
		"analysis", mapping(
			"interval", str(formatDuration(a.Interval)),
			"minRequests", integer(int(a.MinRequests)),
			"maxErrorRate", str(strconv.FormatFloat(100*a.MaxErrorRate, 'f', -1, 64)+"%"),
			"maxP99", str(formatDuration(a.MaxP99)),
			"inconclusive", str(formatDuration(a.Inconclusive)),
			"prometheus", prom,
		),
	))
}
