package analysis

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Buckets is the number of latency buckets: 100 µs up to about 105 s,
// each a quarter-octave (×2^¼, 19 % wider than the one before), and one
// for everything slower.
const Buckets = 81

// bucketBase is the upper bound of the first bucket.
const bucketBase = 100 * time.Microsecond

// Histogram counts requests by latency bucket. Its zero value is empty;
// the balancer keeps one per version and adds to it without locks
// (Observe is not safe for concurrent use: give each writer its own, and
// Add them).
type Histogram [Buckets]int64

// bucket is the index of d's bucket.
func bucket(d time.Duration) int {
	if d <= bucketBase {
		return 0
	}
	i := int(math.Ceil(4 * math.Log2(float64(d)/float64(bucketBase))))
	return min(i, Buckets-1)
}

// Bucket is the index of d's bucket, for writers that count into
// counters of their own (the balancer's atomic ones) and Add them up later.
func Bucket(d time.Duration) int { return bucket(d) }

// UpperBound is the largest latency in bucket i; the last bucket has
// none (math.MaxInt64).
func UpperBound(i int) time.Duration {
	if i >= Buckets-1 {
		return math.MaxInt64
	}
	return time.Duration(float64(bucketBase) * math.Exp2(float64(i)/4))
}

// Observe counts one request that took d.
func (h *Histogram) Observe(d time.Duration) { h[bucket(d)]++ }

// Add adds o's counts.
func (h *Histogram) Add(o *Histogram) {
	for i := range h {
		h[i] += o[i]
	}
}

// Sub is h less o: the counts since o was taken from the same histogram.
func (h Histogram) Sub(o Histogram) Histogram {
	for i := range h {
		h[i] -= o[i]
	}
	return h
}

// Count is the number of requests counted.
func (h *Histogram) Count() int64 {
	var n int64
	for _, c := range h {
		n += c
	}
	return n
}

// Over is the number of requests slower than d (counted by bucket: those
// in buckets whose lower bound is at least d).
func (h *Histogram) Over(d time.Duration) int64 {
	var n int64
	for i := bucket(d) + 1; i < Buckets; i++ {
		n += h[i]
	}
	return n
}

// Quantile is the upper bound of the bucket that holds the q-quantile
// (0 < q ≤ 1), 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i, c := range h {
		if seen += c; seen >= rank {
			return UpperBound(i)
		}
	}
	return UpperBound(Buckets - 1)
}

// UnmarshalJSON reads a histogram as MarshalJSON writes it, an array of
// Buckets counts, and refuses any other length: encoding/json would drop
// the counts past the end, or leave the missing ones 0, without a word
// (figures from a ferry with other buckets would be judged wrong).
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var counts []int64
	if err := json.Unmarshal(b, &counts); err != nil {
		return fmt.Errorf("latency histogram: %w", err)
	}
	if len(counts) != Buckets {
		return fmt.Errorf("latency histogram: %d buckets, want %d", len(counts), Buckets)
	}
	copy(h[:], counts)
	return nil
}
