package lb

import (
	"slices"
	"testing"
)

// TestBuildRoutes: the schedule gives each track exactly its reduced
// weight per cycle, spread out (no two slots of a small track adjacent),
// and a weighted track without a ready backend gives its share to the
// default track.
func TestBuildRoutes(t *testing.T) {
	ready := []*backend{{track: DefaultTrack, id: "s"}, {track: "canary", id: "c"}, {track: "baseline", id: "b"}}
	for _, tc := range []struct {
		name    string
		ready   []*backend
		weights map[string]int
		cycle   map[string]int // slots per cycle by track; nil: no schedule
		starved []string
	}{
		{"no weights", ready, nil, nil, nil},
		{"90/5/5", ready, map[string]int{DefaultTrack: 90, "canary": 5, "baseline": 5}, map[string]int{DefaultTrack: 18, "canary": 1, "baseline": 1}, nil},
		{"50/25/25", ready, map[string]int{DefaultTrack: 50, "canary": 25, "baseline": 25}, map[string]int{DefaultTrack: 2, "canary": 1, "baseline": 1}, nil},
		{"97/3", ready, map[string]int{DefaultTrack: 97, "canary": 3}, map[string]int{DefaultTrack: 97, "canary": 3}, nil},
		{"canary weight 0", ready, map[string]int{DefaultTrack: 100, "canary": 0}, nil, nil},
		{"canary not ready", ready[:1], map[string]int{DefaultTrack: 90, "canary": 5, "baseline": 5}, nil, []string{"baseline", "canary"}},
		{"baseline not ready", ready[:2], map[string]int{DefaultTrack: 90, "canary": 5, "baseline": 5}, map[string]int{DefaultTrack: 19, "canary": 1}, []string{"baseline"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, starved := buildRoutes(tc.ready, tc.weights)
			if !slices.Equal(starved, tc.starved) {
				t.Errorf("starved %v, want %v", starved, tc.starved)
			}
			if tc.cycle == nil {
				if rt.schedule != nil {
					t.Errorf("a schedule of %d slots, want none", len(rt.schedule))
				}
				return
			}
			got := map[string]int{}
			for i, tr := range rt.schedule {
				got[tr.name]++
				if next := rt.schedule[(i+1)%len(rt.schedule)]; tr.name != DefaultTrack && tr == next && tc.cycle[tr.name] < len(rt.schedule)/2 {
					t.Errorf("slots %d and %d both %q", i, i+1, tr.name)
				}
			}
			if len(got) != len(tc.cycle) {
				t.Errorf("cycle %v, want %v", got, tc.cycle)
			}
			for track, n := range tc.cycle {
				if got[track] != n {
					t.Errorf("cycle %v, want %v", got, tc.cycle)
				}
			}
		})
	}
}
