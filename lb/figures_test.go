package lb

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkObserve is the request path's cost of the per-track figures:
// one attempt counted (requests, errors, latency bucket) on one backend,
// from one goroutine and from all at once on the same backend (the
// counters' worst case: every core on one cache line).
//
//	go test -run '^$' -bench Observe -benchmem ./lb/
func BenchmarkObserve(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://app.test/", nil)
	be := &backend{}
	start := time.Now()
	b.Run("serial", func(b *testing.B) {
		out := &outbound{req: req, status: 200}
		for b.Loop() {
			be.observe(out, nil, start)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			out := &outbound{req: req, status: 200}
			for pb.Next() {
				be.observe(out, nil, start)
			}
		})
	})
	if be.stats.requests.Load() == 0 {
		b.Fatal("nothing counted")
	}
}

// BenchmarkRoute is the cost of choosing a track by weight and a backend
// in it, as pick does for a first attempt, with a split of 90/5/5.
//
//	go test -run '^$' -bench Route -benchmem ./lb/
func BenchmarkRoute(b *testing.B) {
	var ready []*backend
	for _, tr := range []struct{ track, id string }{{DefaultTrack, "s1"}, {DefaultTrack, "s2"}, {"canary", "c"}, {"baseline", "b"}} {
		ready = append(ready, &backend{track: tr.track, id: tr.id})
	}
	for _, tc := range []struct {
		name    string
		weights map[string]int
	}{{"no split", nil}, {"split 90/5/5", map[string]int{DefaultTrack: 90, "canary": 5, "baseline": 5}}} {
		b.Run(tc.name, func(b *testing.B) {
			rt, _ := buildRoutes(ready, tc.weights)
			var n int
			for b.Loop() {
				list, next := rt.candidates(0)
				n += len(list[next.Add(1)%uint64(len(list))].id)
			}
			if n == 0 {
				b.Fatal("no route")
			}
		})
	}
}
