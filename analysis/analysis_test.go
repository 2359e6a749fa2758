package analysis

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {100 * time.Microsecond, 0}, {101 * time.Microsecond, 1}, {118 * time.Microsecond, 1}, {119 * time.Microsecond, 2},
		{200 * time.Microsecond, 4}, {201 * time.Microsecond, 5}, {time.Millisecond, 14}, {time.Hour, Buckets - 1},
	} {
		if got := bucket(tc.d); got != tc.want {
			t.Errorf("bucket(%s) = %d, want %d", tc.d, got, tc.want)
		}
		if i := bucket(tc.d); tc.d > UpperBound(i) || (i > 0 && tc.d <= UpperBound(i-1)) {
			t.Errorf("%s lands in bucket %d of (%s, %s]", tc.d, i, UpperBound(i-1), UpperBound(i))
		}
	}
	var h Histogram
	for i := range 100 {
		h.Observe(time.Duration(i+1) * time.Millisecond) // 1 … 100 ms
	}
	for _, tc := range []struct {
		q        float64
		lo, high time.Duration // the true quantile, and the bucket's bound above it
	}{{0.5, 50 * time.Millisecond, 60 * time.Millisecond}, {0.99, 99 * time.Millisecond, 118 * time.Millisecond}, {1, 100 * time.Millisecond, 118 * time.Millisecond}} {
		if got := h.Quantile(tc.q); got < tc.lo || got > tc.high {
			t.Errorf("Quantile(%v) = %s, want in [%s, %s]", tc.q, got, tc.lo, tc.high)
		}
	}
	// 50 ms is in the bucket up to 51.2 ms: the 49 from 52 ms on are over.
	if got := h.Over(50 * time.Millisecond); got != 49 {
		t.Errorf("Over(50ms) = %d, want 49, counted by bucket", got)
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Count() != 0 {
		t.Error("an empty histogram has a quantile")
	}
}

// figures is n requests, errs of them failed, with latencies from lat.
func figures(n, errs int64, lat func() time.Duration) Figures {
	f := Figures{Requests: n, Errors: errs}
	for range n {
		f.Latency.Observe(lat())
	}
	return f
}

func constant(d time.Duration) func() time.Duration { return func() time.Duration { return d } }

// logNormal is latency around median with the spread of a real service.
func logNormal(r *rand.Rand, median time.Duration) func() time.Duration {
	return func() time.Duration { return time.Duration(float64(median) * math.Exp(0.5*r.NormFloat64())) }
}

func TestJudge(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	limits := Limits{MinRequests: 50, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond}
	ok := logNormal(r, 5*time.Millisecond)
	for _, tc := range []struct {
		name             string
		baseline, canary Figures
		want             Outcome
		reason           string // a substring of a reason
	}{
		{"same version", figures(400, 0, ok), figures(400, 0, ok), Pass, ""},
		{"one error in the first fifty", figures(50, 0, ok), figures(50, 1, ok), Pass, ""},
		{"no traffic", Figures{}, Figures{}, Inconclusive, "too few requests"},
		{"too few canary requests", figures(400, 0, ok), figures(49, 49, ok), Inconclusive, "canary 49, baseline 400, need 50"},
		{"5% errors", figures(100, 0, ok), figures(100, 5, ok), Fail, "over the limit 1.00%"},
		{"errors beside a failing baseline", figures(400, 20, ok), figures(400, 60, ok), Fail, "against the baseline's 5.00%"},
		{"as many errors as the baseline", figures(400, 20, ok), figures(400, 22, ok), Fail, "over the limit"}, // 5% is over 1% whatever the baseline does
		{"200 ms slower", figures(100, 0, ok), figures(100, 0, func() time.Duration { return ok() + 200*time.Millisecond }), Fail, "slower than the baseline"},
		{"over the p99 limit", figures(200, 0, constant(600*time.Millisecond)), figures(200, 0, constant(600*time.Millisecond)), Fail, "over the limit 500ms"},
		{"slightly slower, within the share", figures(2000, 0, constant(5*time.Millisecond)), figures(2000, 0, func() time.Duration {
			if r.IntN(10) == 0 {
				return 6 * time.Millisecond
			}
			return 5 * time.Millisecond
		}), Pass, ""},
		// Seen on the local runtime: a healthy release's fresh replica
		// 30 µs slower than the baseline's, every request of it: a real
		// difference, significant at z 4, and no reason to abort.
		{"significantly but negligibly slower", figures(400, 0, constant(140*time.Microsecond)), figures(400, 0, constant(170*time.Microsecond)), Pass, ""},
		{"slower by the floor", figures(400, 0, constant(5*time.Millisecond)), figures(400, 0, constant(11*time.Millisecond)), Fail, "slower than the baseline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(limits, tc.baseline, tc.canary)
			if v.Outcome != tc.want {
				t.Fatalf("outcome %s (%q), want %s", v.Outcome, v.Reasons, tc.want)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(v.Reasons, "\n"), tc.reason) {
				t.Errorf("reasons %q, want one saying %q", v.Reasons, tc.reason)
			}
			if tc.want == Pass && len(v.Reasons) > 0 {
				t.Errorf("a pass with reasons %q", v.Reasons)
			}
			if v.Canary.Requests != tc.canary.Requests || v.Baseline.Requests != tc.baseline.Requests {
				t.Errorf("summaries %+v, %+v", v.Canary, v.Baseline)
			}
		})
	}
}

// TestAA: the same version as canary and baseline, judged every interval
// on its growing figures as a canary runs, 50 canaries of 36 looks each
// (three minutes at 5 s), at 20 and at 500 req/s split 5 %, with 0.5 %
// errors and realistic latency: not one fails.
func TestAA(t *testing.T) {
	limits := Limits{MinRequests: 50, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond}
	for _, rps := range []int{20, 500} {
		r := rand.New(rand.NewPCG(uint64(rps), 7))
		perLook := int64(max(1, rps*5/20)) // 5 % of rps over 5 s, each side
		lat := logNormal(r, 5*time.Millisecond)
		for run := range 50 {
			var canary, baseline Figures
			for look := range 36 {
				for _, f := range []*Figures{&canary, &baseline} {
					for range perLook {
						f.Requests++
						if r.Float64() < 0.005 {
							f.Errors++
						}
						f.Latency.Observe(lat())
					}
				}
				if v := Judge(limits, baseline, canary); v.Outcome == Fail {
					t.Fatalf("%d req/s, run %d, look %d: an A/A split failed: %q", rps, run, look, v.Reasons)
				}
			}
		}
	}
}

// TestDetects: a canary that fails 5 % of requests, or is 200 ms slower,
// fails within two looks of the first with enough requests at 500 req/s
// split 5 %. At 20 req/s (one request a second each side) 200 ms is found
// as soon, but 5 % errors need more requests to tell from noise: within
// eight more looks (40 s).
func TestDetects(t *testing.T) {
	limits := Limits{MinRequests: 50, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond}
	for _, rps := range []int{20, 500} {
		for _, bad := range []struct {
			name string
			errs float64
			add  time.Duration
		}{{"5% errors", 0.05, 0}, {"200 ms slower", 0, 200 * time.Millisecond}} {
			r := rand.New(rand.NewPCG(uint64(rps), 9))
			perLook := int64(max(1, rps*5/20))
			lat := logNormal(r, 5*time.Millisecond)
			var canary, baseline Figures
			failedAt := -1
			for look := 0; look < 60 && failedAt < 0; look++ {
				for range perLook {
					baseline.Requests++
					baseline.Latency.Observe(lat())
					canary.Requests++
					if r.Float64() < bad.errs {
						canary.Errors++
					}
					canary.Latency.Observe(lat() + bad.add)
				}
				if Judge(limits, baseline, canary).Outcome == Fail {
					failedAt = look
				}
			}
			firstJudged := int((limits.MinRequests+perLook-1)/perLook) - 1
			within := 2
			if rps == 20 && bad.errs > 0 {
				within = 8
			}
			t.Logf("%d req/s, %s: failed at look %d (first judged %d)", rps, bad.name, failedAt, firstJudged)
			if failedAt < 0 {
				t.Errorf("%d req/s, %s: never failed in 60 looks", rps, bad.name)
			} else if failedAt > firstJudged+within {
				t.Errorf("%d req/s, %s: failed at look %d, want within %d looks of the first judged one (%d)", rps, bad.name, failedAt, within, firstJudged)
			}
		}
	}
}
