package analysis

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestFiguresJSON: figures cross the node's socket as JSON, and come back
// exactly, each bucket with its count, however large.
func TestFiguresJSON(t *testing.T) {
	var f Figures
	f.Requests, f.Errors = math.MaxInt64, 7
	for _, d := range []time.Duration{0, 50 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 200 * time.Millisecond, time.Hour} {
		f.Latency.Observe(d)
	}
	f.Latency[Buckets/2] = 1<<62 + 1 // not exact as a float64
	b, err := json.Marshal(map[string]Figures{"canary": f})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]Figures
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal(%s): %v", b, err)
	}
	if got["canary"] != f {
		t.Errorf("figures after a JSON round trip = %+v, want %+v", got["canary"], f)
	}
}

func TestHistogramJSONRefusesOtherBuckets(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"fewer", "[1,2,3]", "3 buckets, want 81"},
		{"more", "[" + strings.Repeat("0,", Buckets) + "0]", "82 buckets, want 81"},
		{"not counts", `"fast"`, "latency histogram"},
		{"fractions", "[" + strings.Repeat("0,", Buckets-1) + "0.5]", "latency histogram"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			if err := json.Unmarshal([]byte(tc.json), &h); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Unmarshal(%s) = %v, want an error with %q", tc.json, err, tc.want)
			}
		})
	}
}
