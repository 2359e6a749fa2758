package lb

import (
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
)

// Tracks. Every backend belongs to one track, named by an opaque string:
// Add puts it in DefaultTrack, AddTo in another (the local runtime's
// canary and baseline). With no weights set, requests go to the default
// track's ready backends only. SetWeights shares them out between tracks
// by exact per-request weight: the balancer follows a fixed schedule,
// built by smooth weighted round robin, in which every span of
// sum-of-weights consecutive requests gives each track exactly its weight
// (weights 90, 5 and 5 send exactly 1 request in 20 to each small track,
// never a random approximation), and within a track requests go round
// robin to its ready backends. A weighted track with no ready backend
// gives its share to the default track, and the balancer logs that it
// does; when the default track has no ready backend either, a request
// goes to any ready backend. Retries go to any ready backend not tried
// yet, whatever its track, so that a failing track costs no request that
// another could serve.

// DefaultTrack is the track of the backends Add registers: the one that
// takes the requests no weight sends elsewhere.
const DefaultTrack = ""

// routes is the routing table by track, replaced as a whole (copy on
// write) whenever readiness or weights change.
type routes struct {
	// def is the default track's ready backends.
	def *trackRoute
	// schedule, when not nil, is the track of each request in turn (the
	// default track's slots point at def).
	schedule []*trackRoute
	seq      atomic.Uint64
}

// trackRoute is one track's ready backends, sorted by ID.
type trackRoute struct {
	name  string
	ready []*backend
	next  atomic.Uint64 // round robin within the track
}

// candidates is the list a request's first attempt picks from, and its
// round-robin counter: the next track of the schedule's, or the default
// track's.
func (rt *routes) candidates() ([]*backend, *atomic.Uint64) {
	tr := rt.def
	if rt.schedule != nil {
		tr = rt.schedule[(rt.seq.Add(1)-1)%uint64(len(rt.schedule))]
	}
	return tr.ready, &tr.next
}

// SetWeights shares the requests out between tracks: each track named
// gets its weight out of the sum of all of them (the default track's
// included, DefaultTrack as key); a track not named gets none, and an
// empty or nil map sends everything to the default track again. Weights
// must not be negative, and their sum must be positive unless all are 0.
func (b *Balancer) SetWeights(weights map[string]int) error {
	sum := 0
	for track, w := range weights {
		if w < 0 {
			return fmt.Errorf("lb weights: track %q: weight %d is negative", track, w)
		}
		sum += w
	}
	if sum == 0 {
		weights = nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.weights = maps.Clone(weights)
	b.rebuild()
	b.log.Info("lb weights", "weights", weights)
	return nil
}

// Weights returns the weights SetWeights set (nil: everything to the
// default track).
func (b *Balancer) Weights() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.weights)
}

// buildRoutes makes the routing table of ready (sorted by ID) under
// weights, and reports the weighted tracks that have no ready backend.
func buildRoutes(ready []*backend, weights map[string]int) (rt *routes, starved []string) {
	byTrack := map[string]*trackRoute{DefaultTrack: {name: DefaultTrack}}
	for _, be := range ready {
		tr := byTrack[be.track]
		if tr == nil {
			tr = &trackRoute{name: be.track}
			byTrack[be.track] = tr
		}
		tr.ready = append(tr.ready, be)
	}
	rt = &routes{def: byTrack[DefaultTrack]}
	if len(rt.def.ready) == 0 {
		// Nothing in the default track: any ready backend rather than
		// no answer.
		rt.def.ready = ready
	}
	share := map[string]int{}
	for track, w := range weights {
		if w == 0 {
			continue
		}
		if tr := byTrack[track]; track != DefaultTrack && (tr == nil || len(tr.ready) == 0) {
			starved = append(starved, track)
			track = DefaultTrack
		}
		share[track] += w
	}
	slices.Sort(starved)
	if len(share) <= 1 {
		return rt, starved // one track takes everything: no schedule
	}
	names := slices.Sorted(maps.Keys(share))
	g := 0
	for _, w := range share {
		g = gcd(g, w)
	}
	var sum int
	ws := make([]int, len(names))
	for i, n := range names {
		ws[i] = share[n] / g
		sum += ws[i]
	}
	rt.schedule = make([]*trackRoute, 0, sum)
	for _, i := range smoothWeighted(ws, sum) {
		rt.schedule = append(rt.schedule, byTrack[names[i]])
	}
	return rt, starved
}

// smoothWeighted is nginx's smooth weighted round robin over weights
// (summing to sum) for one full cycle: the index chosen for each of sum
// turns. Each index is chosen exactly its weight times, spread evenly.
func smoothWeighted(weights []int, sum int) []int {
	cur := make([]int, len(weights))
	out := make([]int, 0, sum)
	for range sum {
		best := 0
		for i, w := range weights {
			cur[i] += w
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		out = append(out, best)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// AddTo registers a backend at addr in track and starts checking it, as
// Add does for the default track. An id already registered keeps its
// track.
func (b *Balancer) AddTo(track, id, addr string) {
	b.add(track, id, addr)
}
