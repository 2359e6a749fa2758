package ferry

import "time"

// Canary is a gated environment's canary strategy (strategy.canary in
// ferry.yaml): a release first serves a share of the requests beside the
// running version, step by step, judged against a fresh baseline of the
// running version at the same share, before it takes all of them.
type Canary struct {
	Steps []CanaryStep
	// Baseline runs a fresh replica set of the running version at the
	// canary's weight, so that the canary is compared with a version that
	// started at the same time and takes the same traffic.
	Baseline bool
	Analysis CanaryAnalysis
}

// CanaryStep is one step of a canary: Weight percent of the requests go
// to the canary (and as many to the baseline) for at least For, and until
// the analysis has passed at that weight.
type CanaryStep struct {
	Weight int // 1–99
	For    time.Duration
}

// CanaryAnalysis is how each step is judged.
type CanaryAnalysis struct {
	// Interval is how often the canary is judged.
	Interval time.Duration
	// MinRequests each of canary and baseline needs before a verdict is
	// other than inconclusive.
	MinRequests int64
	// MaxErrorRate (0.01 is 1 %) and MaxP99 are absolute limits on the
	// canary; 0 leaves one out.
	MaxErrorRate float64
	MaxP99       time.Duration
	// Inconclusive is how long a step may stay inconclusive before the
	// canary pauses for a person.
	Inconclusive time.Duration
	// Prometheus, on Kubernetes, is where each track's figures come from
	// (the local runtime's balancer measures them itself).
	Prometheus *CanaryPrometheus
}

// CanaryPrometheus queries a Prometheus server for a track's figures over
// the judged span. Each query is a text/template over CanaryQuery.
type CanaryPrometheus struct {
	URL string
	// Requests and Errors give one number: the track's requests and its
	// failed ones (5xx) over the span.
	Requests, Errors string
	// Latency gives one series per histogram bucket, labelled le, of the
	// track's requests over the span, as a Prometheus histogram's
	// _bucket counters do.
	Latency string
}

// CanaryQuery is what a CanaryPrometheus query template is given.
type CanaryQuery struct {
	Env, App string
	// Track is TrackCanary or TrackBaseline; Version its pods' version
	// label (the short digest).
	Track, Version string
	// Range is the span in PromQL's form ("5m").
	Range string
}

// Split is a canary's traffic split, as a runtime runs it: Stable keeps
// the requests not sent elsewhere; Canary, the new version, takes Weight
// percent of them; with Baseline, a fresh replica set of Stable's spec
// takes Weight percent as well.
type Split struct {
	Stable   Spec
	Canary   Spec
	Baseline bool
	Weight   int
}

// The tracks of a split, by which a runtime reports each one's figures.
const (
	TrackStable   = "stable"
	TrackCanary   = "canary"
	TrackBaseline = "baseline"
)
