package lb

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/analysis"
)

// Figures. The balancer counts, for each track, the attempts its backends
// answered or failed: requests, errors (an answer of 5xx, or an attempt
// that failed at the backend: refused, reset, timed out, a response broken
// off) and a latency histogram from the attempt's start to the end of its
// response. An attempt that failed because of the client (it went away,
// its body was malformed) is not counted; nor is one on a kept-alive
// connection the backend had closed while idle when it is sent again on a
// new one. A request that a retry served elsewhere counts as an error of
// the track that failed it and a request of the one that served it, so a
// failing canary shows in its figures even when no client saw it fail.
//
// Each backend counts into its own atomic counters, so the request path
// takes no lock and allocates nothing; Figures adds them up by track,
// with those of the backends removed since.

// stats are one backend's figures.
type stats struct {
	requests, errors atomic.Int64
	latency          [analysis.Buckets]atomic.Int64
}

// observe counts one attempt on be that started at start and ended with
// err (nil: answered whole).
func (be *backend) observe(out *outbound, err error, start time.Time) {
	if err != nil {
		if out.req.Context().Err() != nil || (out.body != nil && out.body.err != nil) {
			return // the client's doing
		}
		var stale *staleConnError
		if !out.answered && errors.As(err, &stale) {
			return // sent again on a new connection, or answered 502 by the balancer
		}
	}
	s := &be.stats
	s.requests.Add(1)
	if err != nil || out.status >= 500 {
		s.errors.Add(1)
	}
	s.latency[analysis.Bucket(time.Since(start))].Add(1)
}

// addTo adds s to f.
func (s *stats) addTo(f *analysis.Figures) {
	f.Requests += s.requests.Load()
	f.Errors += s.errors.Load()
	for i := range s.latency {
		f.Latency[i] += s.latency[i].Load()
	}
}

// Figures returns each track's figures (keyed by track, DefaultTrack
// included once it had a backend) since ResetFigures, or since the
// balancer started. Reading them does not stop the request path; counts
// land in a backend's counters in no fixed order, so a reading taken
// while requests run may show a request's count without its latency yet.
func (b *Balancer) Figures() map[string]analysis.Figures {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.totals()
	for track, zero := range b.zero {
		f := out[track]
		f.Requests -= zero.Requests
		f.Errors -= zero.Errors
		f.Latency = f.Latency.Sub(zero.Latency)
		out[track] = f
	}
	return out
}

// ResetFigures starts every track's figures from zero.
func (b *Balancer) ResetFigures() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.zero = b.totals()
}

// totals are the figures of every backend since the balancer started, by
// track. b.mu must be held.
func (b *Balancer) totals() map[string]analysis.Figures {
	out := make(map[string]analysis.Figures, len(b.retired)+2)
	for track, f := range b.retired {
		out[track] = *f
	}
	for _, be := range b.backends {
		f := out[be.track]
		be.stats.addTo(&f)
		out[be.track] = f
	}
	return out
}

// retire keeps the figures of be, which was forgotten. b.mu must be held.
func (b *Balancer) retire(be *backend) {
	if b.retired == nil {
		b.retired = map[string]*analysis.Figures{}
	}
	f := b.retired[be.track]
	if f == nil {
		f = new(analysis.Figures)
		b.retired[be.track] = f
	}
	be.stats.addTo(f)
}
