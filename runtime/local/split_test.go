package local

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/lb"
)

// splitModes are the isolation modes a split test runs in: plain
// processes, and under runc when ferry's tests run as root (required when
// FERRY_TEST_REQUIRE names root or runc).
var splitModes = []struct {
	name      string
	noSandbox bool
}{{"process", true}, {"runc", false}}

// TestSplitExactShare: a split of 2 stable replicas with a canary and a
// baseline at 5 % starts one replica of each, gives each exactly 5 % of
// the requests under concurrent load, counts them in Figures; another
// weight changes only the weights; EndSplit under load drops nothing and
// leaves the stable replicas alone.
func TestSplitExactShare(t *testing.T) {
	for _, mode := range splitModes {
		t.Run(mode.name, func(t *testing.T) {
			if !mode.noSandbox {
				requireRunc(t)
			}
			im := appImages(t)
			tg := newTarget(t, im, func(c *Config) { c.NoSandbox = mode.noSandbox })
			stable := spec(im.v1, 2)
			apply(t, tg, stable)
			if f, err := tg.Figures(t.Context()); err != nil || len(f) != 0 {
				t.Fatalf("Figures with no split = %v, %v; want an empty map", f, err)
			}
			s := ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Baseline: true, Weight: 5}
			var steps []string
			if err := tg.Split(t.Context(), s, func(p ferry.Progress) { steps = append(steps, p.Message) }); err != nil {
				t.Fatalf("Split: %v", err)
			}
			t.Logf("split steps: %q", steps)
			st := status(t, tg)
			tracks := trackOf(st)
			if st.Digest != im.v1 || st.Ready != 2 || len(st.Replicas) != 4 {
				t.Fatalf("Status in the split = %+v, want v1 with 2 ready stable replicas, and 2 more", st)
			}
			if got := countTracks(st); got[ferry.TrackCanary] != 1 || got[ferry.TrackBaseline] != 1 || got[ferry.TrackStable] != 2 {
				t.Errorf("replicas by track %v, want 2 stable, 1 canary, 1 baseline", got)
			}
			for _, r := range st.Replicas {
				if want := map[string]string{ferry.TrackCanary: im.v2, ferry.TrackBaseline: im.v1, ferry.TrackStable: im.v1}[r.Track]; r.Digest != want {
					t.Errorf("%s replica %s runs %s, want %s", r.Track, r.ID, ferry.ShortDigest(r.Digest), ferry.ShortDigest(want))
				}
			}

			const n = 2000
			served := sendN(t, tg, 4, n)
			byTrack := map[string]int{}
			for id, c := range served {
				byTrack[tracks[id]] += c
			}
			if byTrack[ferry.TrackCanary] != n/20 || byTrack[ferry.TrackBaseline] != n/20 || byTrack[ferry.TrackStable] != n-n/10 {
				t.Errorf("%d requests by track %v, want exactly %d each to canary and baseline", n, byTrack, n/20)
			}
			figs, err := tg.Figures(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for track, c := range byTrack {
				f := figs[track]
				if f.Requests != int64(c) || f.Errors != 0 || f.Latency.Count() != int64(c) {
					t.Errorf("figures of %s: %d requests, %d errors, %d timed; want %d, 0, %d", track, f.Requests, f.Errors, f.Latency.Count(), c, c)
				}
			}

			// Another weight: the same replicas, another share.
			before := pids(tg)
			s.Weight = 25
			if err := tg.Split(t.Context(), s, nil); err != nil {
				t.Fatalf("Split at 25%%: %v", err)
			}
			if after := pids(tg); !slices.Equal(before, after) {
				t.Errorf("Split at another weight restarted replicas: pids %v, then %v", before, after)
			}
			served = sendN(t, tg, 4, 400)
			if c, b := served[idOf(st, ferry.TrackCanary)], served[idOf(st, ferry.TrackBaseline)]; c != 100 || b != 100 {
				t.Errorf("at 25%%: canary %d, baseline %d of 400, want 100 each", c, b)
			}
			if f, _ := tg.Figures(t.Context()); f[ferry.TrackCanary].Requests != int64(n/20+100) {
				t.Errorf("figures of the canary %d, want %d since the split started", f[ferry.TrackCanary].Requests, n/20+100)
			}

			l := startLoad(tg, 4)
			time.Sleep(200 * time.Millisecond)
			if err := tg.EndSplit(t.Context()); err != nil {
				t.Fatalf("EndSplit: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			versions := l.stop(t)
			if versions["v2"] == 0 {
				t.Errorf("the canary served nothing under load before EndSplit: %v", versions)
			}
			st = status(t, tg)
			if st.Digest != im.v1 || len(st.Replicas) != 2 || countTracks(st)[ferry.TrackStable] != 2 {
				t.Errorf("Status after EndSplit = %+v, want the 2 stable v1 replicas only", st)
			}
			if f, _ := tg.Figures(t.Context()); len(f) != 0 {
				t.Errorf("Figures after EndSplit = %v, want none", f)
			}
			if err := tg.EndSplit(t.Context()); err != nil {
				t.Errorf("EndSplit again: %v", err)
			}
		})
	}
}

// TestSplitFiguresBadCanary: the canary's 5xx answers are its errors, and
// nobody else's.
func TestSplitFiguresBadCanary(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	stable := spec(im.v1, 1)
	apply(t, tg, stable)
	if err := tg.Split(t.Context(), ferry.Split{Stable: stable, Canary: spec(im.bad, 1), Baseline: true, Weight: 25}, nil); err != nil {
		t.Fatalf("Split: %v", err)
	}
	codes := map[int]int{}
	for range 400 {
		res, err := http.Get("http://" + tg.Addr() + "/version")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		codes[res.StatusCode]++
	}
	f, err := tg.Figures(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c, b, s := f[ferry.TrackCanary], f[ferry.TrackBaseline], f[ferry.TrackStable]
	// 100 requests to the bad canary, of which every 4th failed.
	if c.Requests != 100 || c.Errors != 25 || b.Requests != 100 || b.Errors != 0 || s.Requests != 200 || s.Errors != 0 {
		t.Errorf("figures: canary %d/%d, baseline %d/%d, stable %d/%d; want 100/25, 100/0, 200/0",
			c.Requests, c.Errors, b.Requests, b.Errors, s.Requests, s.Errors)
	}
	if codes[http.StatusInternalServerError] != 25 {
		t.Errorf("answers %v, want 25 of 500", codes)
	}
}

// TestSplitCrashLoopingCanary: a canary that crash-loops makes Split fail
// like Apply, stops its replicas and those of the baseline, and the
// stable replicas keep every request.
func TestSplitCrashLoopingCanary(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	stable := spec(im.v1, 2)
	apply(t, tg, stable)
	l := startLoad(tg, 4)
	err := tg.Split(t.Context(), ferry.Split{Stable: stable, Canary: spec(im.crash, 2), Baseline: true, Weight: 5}, nil)
	versions := l.stop(t)
	re, ok := errors.AsType[*ReplicaError](err)
	if !ok || !strings.Contains(re.Reason, "crash-looping") || re.Digest != im.crash {
		t.Fatalf("Split(crash) = %v, want a crash-looping *ReplicaError of the canary", err)
	}
	if len(versions) != 1 || versions["v1"] == 0 {
		t.Errorf("served %v, want v1 only", versions)
	}
	st := status(t, tg)
	if st.Digest != im.v1 || st.Ready != 2 || len(st.Replicas) != 2 {
		t.Errorf("Status after the failed split = %+v, want the 2 stable replicas only", st)
	}
	if f, _ := tg.Figures(t.Context()); len(f) != 0 {
		t.Errorf("Figures after the failed split = %v, want none", f)
	}
	if w := tg.lb.Weights(); w != nil {
		t.Errorf("weights after the failed split = %v, want none", w)
	}
}

// TestSplitPromote: Apply(canary spec) during a split rolls only the
// stable replicas, under the split's weights, and EndSplit then leaves the
// new version alone; no request fails on the way.
func TestSplitPromote(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	stable := spec(im.v1, 2)
	apply(t, tg, stable)
	s := ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Baseline: true, Weight: 25}
	if err := tg.Split(t.Context(), s, nil); err != nil {
		t.Fatal(err)
	}
	split := status(t, tg)
	canary, baseline := idOf(split, ferry.TrackCanary), idOf(split, ferry.TrackBaseline)
	l := startLoad(tg, 4)
	apply(t, tg, spec(im.v2, 2))
	st := status(t, tg)
	if st.Digest != im.v2 || st.Ready != 2 || idOf(st, ferry.TrackCanary) != canary || idOf(st, ferry.TrackBaseline) != baseline {
		t.Errorf("Status after Apply(canary) = %+v, want stable on v2 beside the same canary %s and baseline %s", st, canary, baseline)
	}
	if w := tg.lb.Weights(); w[ferry.TrackCanary] != 25 || w[ferry.TrackBaseline] != 25 {
		t.Errorf("weights after Apply(canary) = %v, want the split's", w)
	}
	// The load goes on: over any span, each takes a quarter of the
	// requests, give or take the one in flight at each end.
	before, _ := tg.Figures(t.Context())
	time.Sleep(300 * time.Millisecond)
	after, _ := tg.Figures(t.Context())
	var total int64
	for _, track := range []string{ferry.TrackStable, ferry.TrackCanary, ferry.TrackBaseline} {
		total += after[track].Requests - before[track].Requests
	}
	for _, track := range []string{ferry.TrackCanary, ferry.TrackBaseline} {
		if got := after[track].Requests - before[track].Requests; total < 40 || got < total/4-4 || got > total/4+4 {
			t.Errorf("after Apply(canary): %s served %d of %d, want a quarter", track, got, total)
		}
	}
	if err := tg.EndSplit(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	versions := l.stop(t)
	t.Logf("served %v", versions)
	st = status(t, tg)
	if st.Digest != im.v2 || len(st.Replicas) != 2 || st.Ready != 2 {
		t.Errorf("Status after promotion = %+v, want 2 v2 replicas", st)
	}
	if _, body := get(t, tg, "/version"); body != "v2" {
		t.Errorf("after promotion /version = %q", body)
	}
}

func TestSplitRefused(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	stable := spec(im.v1, 1)
	apply(t, tg, stable)
	for _, tc := range []struct {
		name string
		s    ferry.Split
		code string
	}{
		{"negative weight", ferry.Split{Stable: stable, Canary: spec(im.v2, 1), Weight: -1}, ferry.EINVALID},
		{"over half with a baseline", ferry.Split{Stable: stable, Canary: spec(im.v2, 1), Baseline: true, Weight: 51}, ferry.EINVALID},
		{"another environment", ferry.Split{Stable: stable, Canary: ferry.Spec{Env: "prod", Digest: im.v2}, Weight: 5}, ferry.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tg.Split(t.Context(), tc.s, nil); ferry.ErrorCode(err) != tc.code {
				t.Errorf("Split = %v, want %s", err, tc.code)
			}
		})
	}
	if err := tg.Split(t.Context(), ferry.Split{Stable: stable, Canary: spec(im.v2, 1), Weight: 0}, nil); err != nil {
		t.Fatal(err)
	}
	if served := sendN(t, tg, 1, 20); served[idOf(status(t, tg), ferry.TrackCanary)] != 0 {
		t.Errorf("weight 0: the canary served %v", served)
	}
	if err := tg.Split(t.Context(), ferry.Split{Stable: stable, Canary: spec(im.bad, 1), Weight: 5}, nil); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("a split of another canary = %v, want ECONFLICT", err)
	}
}

// sendN sends n GET /version from workers and returns how many each
// replica served; every request must succeed.
func sendN(t *testing.T, tg *Runtime, workers, n int) map[string]int {
	t.Helper()
	l := loadtest.Start(loadtest.Config{
		Workers: workers, Max: int64(n), URL: "http://" + tg.Addr() + "/version",
		Key: func(res *http.Response, _ []byte) string { return res.Header.Get(lb.ReplicaHeader) },
	})
	for deadline := time.Now().Add(60 * time.Second); l.OK()+l.Failed() < int64(n) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	l.Stop()
	if l.Failed() > 0 || l.OK() != int64(n) {
		t.Fatalf("%d of %d requests ok, %d failed: %q", l.OK(), n, l.Failed(), l.Errors())
	}
	return l.Served(time.Time{})
}

func trackOf(st ferry.Status) map[string]string {
	m := map[string]string{}
	for _, r := range st.Replicas {
		m[r.ID] = r.Track
	}
	return m
}

func countTracks(st ferry.Status) map[string]int {
	m := map[string]int{}
	for _, r := range st.Replicas {
		m[r.Track]++
	}
	return m
}

// idOf is the id of the first replica of track.
func idOf(st ferry.Status, track string) string {
	for _, r := range st.Replicas {
		if r.Track == track {
			return r.ID
		}
	}
	return ""
}

// The controller's splitter and figures interfaces (issue 15's contract).
var _ interface {
	Split(context.Context, ferry.Split, func(ferry.Progress)) error
	EndSplit(context.Context) error
	Figures(context.Context) (map[string]analysis.Figures, error)
} = (*Runtime)(nil)

// TestSplitScalesCanaryUp: a higher weight starts more canary replicas
// (⌈stable × weight / 100⌉), keeping the ones that run, and the canary's
// share is exact across them.
func TestSplitScalesCanaryUp(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im)
	stable := spec(im.v1, 3)
	apply(t, tg, stable)
	s := ferry.Split{Stable: stable, Canary: spec(im.v2, 3), Weight: 5}
	if err := tg.Split(t.Context(), s, nil); err != nil {
		t.Fatal(err)
	}
	first := idOf(status(t, tg), ferry.TrackCanary)
	s.Weight = 50
	if err := tg.Split(t.Context(), s, nil); err != nil {
		t.Fatal(err)
	}
	st := status(t, tg)
	if got := countTracks(st); got[ferry.TrackCanary] != 2 || got[ferry.TrackStable] != 3 || idOf(st, ferry.TrackCanary) != first {
		t.Fatalf("at 50%%: replicas by track %v (first canary %s, was %s), want 3 stable and 2 canary, the first kept", got, idOf(st, ferry.TrackCanary), first)
	}
	tracks := trackOf(st)
	byTrack := map[string]int{}
	for id, n := range sendN(t, tg, 4, 400) {
		byTrack[tracks[id]] += n
	}
	if byTrack[ferry.TrackCanary] != 200 || byTrack[ferry.TrackStable] != 200 {
		t.Errorf("at 50%%: served by track %v, want 200 each", byTrack)
	}
}
