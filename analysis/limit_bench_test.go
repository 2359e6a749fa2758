package analysis

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkErrorLimit simulates the absolute error-rate limit (1 %) as a
// canary meets it: a judgement every 2 s for 150 s on everything served
// so far, from 50 requests on, with the canary at 1 or 25 requests a
// second (5 % of 20 or of 500 req/s) and a true error rate under, at and
// over the limit. For each z it reports how often a canary is aborted
// (aborted-%: false aborts under the limit, detections over it) and the
// mean time to the abort. It is why the limit is tested at z = 3.29, not
// lower: at 1.96 a 5 % canary at 25 req/s is caught 1.7 s sooner, but a
// healthy one failing 0.5 % is aborted 3–4 % of the time.
//
//	go test -run '^$' -bench ErrorLimit ./analysis/
func BenchmarkErrorLimit(b *testing.B) {
	for _, z := range []float64{1.96, 2.58, 3.29} {
		for _, p := range []float64{0.005, 0.01, 0.05} {
			for _, perSec := range []int{1, 25} {
				b.Run(fmt.Sprintf("z=%.2f/errors=%.1f%%/%dps", z, 100*p, perSec), func(b *testing.B) {
					r := rand.New(rand.NewPCG(uint64(perSec), 9))
					aborted, at := 0, 0.0
					runs := 0
					for b.Loop() {
						for range 100 {
							runs++
							var k, n int64
							for look := range 75 {
								for range perSec * 2 {
									n++
									if r.Float64() < p {
										k++
									}
								}
								if n >= 50 && wilsonLower(k, n, z) > 0.01 {
									aborted++
									at += float64(look+1) * 2
									break
								}
							}
						}
					}
					b.ReportMetric(100*float64(aborted)/float64(runs), "aborted-%")
					b.ReportMetric(at/float64(max(aborted, 1)), "abort-s")
				})
			}
		}
	}
}
