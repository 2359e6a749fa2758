// Package analysis judges a canary against its baseline, as Kayenta does:
// the same traffic split to a fresh replica of the running version and to
// the new one, each version's figures recorded by the balancer, and a
// verdict every interval that does not fire on noise. It is pure: figures
// in, verdict out.
//
// A verdict fails the canary when any of these holds, and says which with
// the figures:
//   - its error rate is over the absolute limit even at the lower bound
//     of its Wilson score interval at ZCritical, so that two errors in the
//     first fifty requests are not 4 %;
//   - more than 1 % of its requests are slower than the absolute p99
//     limit, judged the same way;
//   - it fails more often than the baseline: a one-sided two-proportion z
//     test past ZCritical, and at least MinErrorIncrease more;
//   - it is slower than the baseline: a one-sided Mann-Whitney U test on
//     the latency histograms past ZCritical, a canary request slower
//     than a baseline request at least MinSlowerShare of the time, and
//     its median at least MinSlowdown above the baseline's.
//
// The relative tests need both a significant difference and a large one:
// the judgement runs every interval on figures that keep growing, and a
// significance test alone, asked often enough, fires on an A/A split; and
// with thousands of sub-millisecond requests it finds a real but
// meaningless difference (a fresh replica 30 µs slower than another),
// which MinSlowdown leaves out. With
// fewer than MinRequests requests on either side, the verdict is
// inconclusive: it never passes silently.
package analysis

import (
	"fmt"
	"math"
	"time"
)

// Limits are a canary's thresholds.
type Limits struct {
	// MinRequests each side needs before a verdict is other than
	// inconclusive.
	MinRequests int64
	// MaxErrorRate is the absolute limit on the canary's error rate
	// (0.01 is 1 %); 0 leaves it out.
	MaxErrorRate float64
	// MaxP99 is the absolute limit on the canary's 99th percentile; 0
	// leaves it out.
	MaxP99 time.Duration
	// ZCritical is the z score past which a difference is significant
	// (DefaultZCritical when 0).
	ZCritical float64
	// MinErrorIncrease is how much higher than the baseline's the
	// canary's error rate must be to fail it (DefaultMinErrorIncrease
	// when 0).
	MinErrorIncrease float64
	// MinSlowerShare is how often a canary request must be slower than a
	// baseline request to fail it, of 1 (DefaultMinSlowerShare when 0;
	// 0.5 means no difference).
	MinSlowerShare float64
	// MinSlowdown is how much the canary's median latency must exceed
	// the baseline's to fail it as slower (DefaultMinSlowdown when 0).
	MinSlowdown time.Duration
}

// Defaults of the relative tests.
const (
	// DefaultZCritical: one-sided p ≈ 0.0005.
	DefaultZCritical = 3.29
	// DefaultMinErrorIncrease: half a percentage point.
	DefaultMinErrorIncrease = 0.005
	// DefaultMinSlowerShare: a canary request is slower than a baseline
	// one 60 % of the time (0.5 is a tie).
	DefaultMinSlowerShare = 0.6
	// DefaultMinSlowdown: 5 ms in the median. Two healthy replicas of one
	// version differ by tens of microseconds, and the relative test finds
	// that significant once it has a few hundred requests (false aborts
	// of healthy releases on the local runtime before this floor).
	DefaultMinSlowdown = 5 * time.Millisecond
)

// slowShare is the share of requests over MaxP99 that a p99 limit allows.
const slowShare = 0.01

// Figures are one version's requests over the judged span.
// They travel as JSON (the node's figures call) without loss.
type Figures struct {
	Requests int64 `json:"requests"`
	// Errors are the 5xx answers and the requests the balancer could not
	// forward.
	Errors  int64     `json:"errors"`
	Latency Histogram `json:"latency"`
}

// Outcome is what a verdict says of the canary.
type Outcome string

const (
	Pass         Outcome = "pass"
	Fail         Outcome = "fail"
	Inconclusive Outcome = "inconclusive"
)

// Verdict is one judgement.
type Verdict struct {
	Outcome Outcome `json:"outcome"`
	// Reasons say, with the figures, why the canary failed, or why the
	// verdict is inconclusive; empty when it passes.
	Reasons          []string `json:"reasons,omitempty"`
	Canary, Baseline Summary
}

// Summary is a version's figures as people read them.
type Summary struct {
	Requests  int64         `json:"requests"`
	ErrorRate float64       `json:"errorRate"`
	P50       time.Duration `json:"p50"`
	P99       time.Duration `json:"p99"`
}

func summarize(f Figures) Summary {
	return Summary{Requests: f.Requests, ErrorRate: rate(f.Errors, f.Requests), P50: f.Latency.Quantile(0.5), P99: f.Latency.Quantile(0.99)}
}

// Judge judges the canary against the baseline.
func Judge(l Limits, baseline, canary Figures) Verdict {
	l = l.withDefaults()
	v := Verdict{Outcome: Pass, Canary: summarize(canary), Baseline: summarize(baseline)}
	if canary.Requests < l.MinRequests || baseline.Requests < l.MinRequests {
		v.Outcome = Inconclusive
		v.Reasons = []string{fmt.Sprintf("too few requests to judge: canary %d, baseline %d, need %d each", canary.Requests, baseline.Requests, l.MinRequests)}
		return v
	}
	fail := func(format string, args ...any) {
		v.Outcome = Fail
		v.Reasons = append(v.Reasons, fmt.Sprintf(format, args...))
	}
	cr, br := rate(canary.Errors, canary.Requests), rate(baseline.Errors, baseline.Requests)
	if l.MaxErrorRate > 0 {
		if low := wilsonLower(canary.Errors, canary.Requests, l.ZCritical); low > l.MaxErrorRate {
			fail("error rate %s (%d of %d; at least %s at z = %.2f) is over the limit %s",
				percent(cr), canary.Errors, canary.Requests, percent(low), l.ZCritical, percent(l.MaxErrorRate))
		}
	}
	if l.MaxP99 > 0 {
		slow := canary.Latency.Over(l.MaxP99)
		if low := wilsonLower(slow, canary.Requests, l.ZCritical); low > slowShare {
			fail("p99 %s is over the limit %s: %d of %d requests took longer (at least %s at z = %.2f)",
				v.Canary.P99, l.MaxP99, slow, canary.Requests, percent(low), l.ZCritical)
		}
	}
	if z := twoProportionZ(canary.Errors, canary.Requests, baseline.Errors, baseline.Requests); z > l.ZCritical && cr-br >= l.MinErrorIncrease {
		fail("error rate %s against the baseline's %s (z = %.1f)", percent(cr), percent(br), z)
	}
	if z, slower := mannWhitney(canary.Latency, baseline.Latency); z > l.ZCritical && slower >= l.MinSlowerShare && v.Canary.P50-v.Baseline.P50 >= l.MinSlowdown {
		fail("slower than the baseline: p50 %s against %s, p99 %s against %s; a canary request is slower %s of the time (z = %.1f)",
			v.Canary.P50, v.Baseline.P50, v.Canary.P99, v.Baseline.P99, percent(slower), z)
	}
	return v
}

func (l Limits) withDefaults() Limits {
	if l.ZCritical == 0 {
		l.ZCritical = DefaultZCritical
	}
	if l.MinErrorIncrease == 0 {
		l.MinErrorIncrease = DefaultMinErrorIncrease
	}
	if l.MinSlowerShare == 0 {
		l.MinSlowerShare = DefaultMinSlowerShare
	}
	if l.MinSlowdown == 0 {
		l.MinSlowdown = DefaultMinSlowdown
	}
	return l
}

func rate(k, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(k) / float64(n)
}

func percent(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

// wilsonLower is the lower bound of the Wilson score interval of k
// successes in n trials at z.
func wilsonLower(k, n int64, z float64) float64 {
	if n == 0 {
		return 0
	}
	p, nf := float64(k)/float64(n), float64(n)
	center := p + z*z/(2*nf)
	margin := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))
	return max(0, (center-margin)/(1+z*z/nf))
}

// twoProportionZ is the z score of "the first rate is higher than the
// second", with the pooled variance; 0 when there is no variance.
func twoProportionZ(k1, n1, k0, n0 int64) float64 {
	if n1 == 0 || n0 == 0 {
		return 0
	}
	p := float64(k1+k0) / float64(n1+n0)
	se := math.Sqrt(p * (1 - p) * (1/float64(n1) + 1/float64(n0)))
	if se == 0 {
		return 0
	}
	return (rate(k1, n1) - rate(k0, n0)) / se
}

// mannWhitney tests "a is slower than b" on two histograms of the same
// buckets: requests in one bucket tie. It returns the z score (normal
// approximation, tie-corrected) and U/(n_a·n_b), the share of pairs in
// which a is slower, ties counting half.
func mannWhitney(a, b Histogram) (z, slower float64) {
	na, nb := float64(a.Count()), float64(b.Count())
	if na == 0 || nb == 0 {
		return 0, 0.5
	}
	var u, below, ties float64
	for i := range a {
		ca, cb := float64(a[i]), float64(b[i])
		u += ca * (below + cb/2)
		below += cb
		t := ca + cb
		ties += t*t*t - t
	}
	n := na + nb
	mean := na * nb / 2
	variance := na * nb / 12 * ((n + 1) - ties/(n*(n-1)))
	slower = u / (na * nb)
	if variance <= 0 {
		return 0, slower
	}
	return (u - mean) / math.Sqrt(variance), slower
}
