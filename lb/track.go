package lb

import (
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
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
	// bands share [0, sum) between the weighted tracks other than the
	// default for sticky requests; what no band holds is the default
	// track's. With k such tracks, the jth (by name) has the band of its
	// weight from j × sum / k, so that it grows from the same start as its
	// weight does: a client on the canary at 5 % stays on it at 25 %, and
	// one on the baseline never moves to the canary. A weight over sum / k
	// makes the bands follow each other instead.
	bands []band
	sum   uint64
}

type band struct {
	track      *trackRoute
	from, upTo uint64
}

// trackRoute is one track's ready backends, sorted by ID.
type trackRoute struct {
	name  string
	ready []*backend
	next  atomic.Uint64 // round robin within the track
}

// candidates is the list a request's first attempt picks from, and its
// round-robin counter: the next track of the schedule's, or the default
// track's; with a sticky key (not 0), the track its band holds.
func (rt *routes) candidates(sticky uint64) ([]*backend, *atomic.Uint64) {
	tr := rt.def
	switch {
	case rt.schedule == nil:
	case sticky != 0:
		tr = rt.band(sticky % rt.sum)
	default:
		tr = rt.schedule[(rt.seq.Add(1)-1)%uint64(len(rt.schedule))]
	}
	return tr.ready, &tr.next
}

// band is the track whose band holds h (0 ≤ h < sum).
func (rt *routes) band(h uint64) *trackRoute {
	for _, b := range rt.bands {
		if b.from <= h && h < b.upTo {
			return b.track
		}
	}
	return rt.def
}

// stickyKey is the hash (never 0) of r's sticky header or cookie, or 0
// when stickiness is off or r carries neither.
func (b *Balancer) stickyKey(r *http.Request) uint64 {
	if b.cfg.StickyHeader == "" && b.cfg.StickyCookie == "" {
		return 0
	}
	v := ""
	if b.cfg.StickyHeader != "" {
		v = r.Header.Get(b.cfg.StickyHeader)
	}
	if v == "" && b.cfg.StickyCookie != "" {
		if c, err := r.Cookie(b.cfg.StickyCookie); err == nil {
			v = c.Value
		}
	}
	if v == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(v))
	return max(h.Sum64(), 1)
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
	// Bands over the weights as given (not reduced), so that a band's
	// start does not move when another weight changes the divisor.
	rt.sum = uint64(g * sum)
	others := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == DefaultTrack })
	k := uint64(len(others))
	spread := true
	for _, n := range others {
		spread = spread && uint64(share[n]) <= rt.sum/k
	}
	var from uint64
	for j, n := range others {
		if spread {
			from = uint64(j) * rt.sum / k
		}
		rt.bands = append(rt.bands, band{byTrack[n], from, from + uint64(share[n])})
		from += uint64(share[n])
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
