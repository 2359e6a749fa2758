package local

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/lb"
)

// A split runs a canary beside the stable replicas: canary replicas of the
// new spec in the balancer's ferry.TrackCanary track and, with a baseline,
// fresh replicas of the stable spec in ferry.TrackBaseline, each given
// exactly Weight percent of the requests by the balancer (lb's weighted
// tracks). The stable replicas stay in the default track: Apply rolls them
// (and only them) while the split's weights hold, which is how a canary is
// promoted: Apply(canary spec), then EndSplit.

// split is the split that runs.
type split struct {
	canary, stable ferry.Spec // with rollout defaults
	canaryKey      string
	stableKey      string
	baseline       bool
	weight         int
}

// trackName is the ferry.Track… name of a balancer track.
func trackName(track string) string {
	if track == lb.DefaultTrack {
		return ferry.TrackStable
	}
	return track
}

// Split starts the canary (and baseline) replicas when they do not run
// yet, or more of them when the weight asks for more, waits until they
// are ready, then routes s.Weight percent of the requests to each; see
// the contract in the controller. It starts max(1, ⌈stable replicas ×
// weight / 100⌉) replicas per track, and never stops any at a lower
// weight. A split of another canary or stable spec than the one that runs
// is refused (ECONFLICT): EndSplit first. When the first replicas of a
// split fail (crash-looping, not ready within the canary's ReadyTimeout),
// every canary and baseline replica is stopped, the stable replicas keep
// all the requests and the error is a *ReplicaError; when more replicas
// for a higher weight fail, they are stopped and the split keeps its
// weight.
func (t *Runtime) Split(ctx context.Context, s ferry.Split, progress func(ferry.Progress)) error {
	maxWeight := 100
	if s.Baseline {
		maxWeight = 50
	}
	if s.Weight < 0 || s.Weight > maxWeight {
		return ferry.Errorf(ferry.EINVALID, "split %s: weight %d: want 0 to %d", t.cfg.Env, s.Weight, maxWeight)
	}
	for _, spec := range []ferry.Spec{s.Stable, s.Canary} {
		if spec.Env != "" && spec.Env != t.cfg.Env {
			return ferry.Errorf(ferry.EINVALID, "split %s: spec is for environment %q", t.cfg.Env, spec.Env)
		}
	}
	t.applyMu.Lock()
	defer t.applyMu.Unlock()
	want := split{canary: s.Canary, stable: s.Stable, baseline: s.Baseline, weight: s.Weight}
	want.canary.Rollout = want.canary.Rollout.WithDefaults()
	want.stable.Rollout = want.stable.Rollout.WithDefaults()
	want.canaryKey, want.stableKey = specKey(want.canary), specKey(want.stable)

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ferry.Errorf(ferry.EUNAVAILABLE, "split %s: runtime closed", t.cfg.Env)
	}
	cur := t.split
	t.mu.Unlock()
	if cur != nil && (cur.canaryKey != want.canaryKey || cur.stableKey != want.stableKey) {
		return ferry.Errorf(ferry.ECONFLICT, "split %s: a split of %s against %s runs; end it first",
			t.cfg.Env, ferry.ShortDigest(cur.canary.Digest), ferry.ShortDigest(cur.stable.Digest))
	}
	fresh := cur == nil
	n := max(1, (max(s.Stable.Replicas, 0)*s.Weight+99)/100)
	tracks := []struct {
		name string
		spec ferry.Spec
		key  string
		on   bool
	}{
		{ferry.TrackCanary, want.canary, want.canaryKey, true},
		{ferry.TrackBaseline, want.stable, want.stableKey, s.Baseline},
	}
	for _, tr := range tracks {
		if !tr.on {
			continue
		}
		if err := t.grow(ctx, tr.name, tr.spec, tr.key, n, progress); err != nil {
			if fresh {
				t.stopTracks(ctx, want.canary.Rollout.Grace)
			}
			return err
		}
	}
	if cur != nil && cur.baseline && !s.Baseline {
		t.stopTrack(ctx, ferry.TrackBaseline, want.canary.Rollout.Grace)
	}

	t.mu.Lock()
	t.split = &want
	t.mu.Unlock()
	if fresh {
		t.lb.ResetFigures()
	}
	weights := map[string]int{lb.DefaultTrack: 100 - s.Weight, ferry.TrackCanary: s.Weight}
	if s.Baseline {
		weights[lb.DefaultTrack] -= s.Weight
		weights[ferry.TrackBaseline] = s.Weight
	}
	if err := t.lb.SetWeights(weights); err != nil {
		return fmt.Errorf("split %s: %w", t.cfg.Env, err)
	}
	msg := fmt.Sprintf("%d%% of requests to the canary %s", s.Weight, ferry.ShortDigest(s.Canary.Digest))
	if s.Baseline {
		msg += fmt.Sprintf(" and %d%% to the baseline %s", s.Weight, ferry.ShortDigest(s.Stable.Digest))
	}
	(&rollout{t: t, spec: want.stable, key: want.stableKey, progress: progress}).report("%s", msg)
	return nil
}

// grow starts replicas of spec in track until n run there, and waits for
// them to be ready.
func (t *Runtime) grow(ctx context.Context, track string, spec ferry.Spec, key string, n int, progress func(ferry.Progress)) error {
	have := t.trackReplicas(track)
	if len(have) >= n {
		return nil
	}
	spec.Replicas = n
	r := &rollout{t: t, spec: spec, key: key, track: track, progress: progress}
	r.report("pulling %s for the %s", ferry.ShortDigest(spec.Digest), track)
	img, err := t.images.get(ctx, spec.Digest)
	if err != nil {
		return fmt.Errorf("split %s: %s: %w", t.cfg.Env, track, err)
	}
	r.img = img
	return r.startBatch(ctx, n-len(have), have)
}

// trackReplicas are the live replicas of track that are not stopping.
func (t *Runtime) trackReplicas(track string) []*replica {
	t.mu.Lock()
	defer t.mu.Unlock()
	var rs []*replica
	for _, r := range t.replicas {
		if r.track == track && r.snapshot().state != ferry.ReplicaStopping {
			rs = append(rs, r)
		}
	}
	return rs
}

// EndSplit routes every request to the stable replicas again, then drains
// and stops the canary and baseline replicas. It is a no-op when no split
// runs.
func (t *Runtime) EndSplit(ctx context.Context) error {
	t.applyMu.Lock()
	defer t.applyMu.Unlock()
	t.mu.Lock()
	sp := t.split
	t.split = nil
	t.mu.Unlock()
	if err := t.lb.SetWeights(nil); err != nil && !errors.Is(err, lb.ErrClosed) {
		return fmt.Errorf("end split %s: %w", t.cfg.Env, err)
	}
	grace := ferry.DefaultGrace
	if sp != nil {
		grace = sp.canary.Rollout.Grace
	}
	t.stopTracks(ctx, grace)
	return nil
}

// stopTracks drains and stops every canary and baseline replica.
func (t *Runtime) stopTracks(ctx context.Context, grace time.Duration) {
	t.mu.Lock()
	rs := slices.DeleteFunc(slices.Clone(t.replicas), func(r *replica) bool { return r.track == lb.DefaultTrack })
	t.mu.Unlock()
	t.stop(context.WithoutCancel(ctx), rs, grace)
}

// stopTrack drains and stops track's replicas.
func (t *Runtime) stopTrack(ctx context.Context, track string, grace time.Duration) {
	t.stop(context.WithoutCancel(ctx), t.trackReplicas(track), grace)
}

// Figures returns each track's figures (ferry.TrackStable, TrackCanary,
// and TrackBaseline with a baseline) since the split started, as the
// balancer counted them; an empty map when no split runs.
func (t *Runtime) Figures(ctx context.Context) (map[string]analysis.Figures, error) {
	t.mu.Lock()
	sp := t.split
	t.mu.Unlock()
	out := map[string]analysis.Figures{}
	if sp == nil {
		return out, nil
	}
	f := t.lb.Figures()
	out[ferry.TrackStable] = f[lb.DefaultTrack]
	out[ferry.TrackCanary] = f[ferry.TrackCanary]
	if sp.baseline {
		out[ferry.TrackBaseline] = f[ferry.TrackBaseline]
	}
	return out, nil
}
