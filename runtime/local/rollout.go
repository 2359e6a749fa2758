package local

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ferryhq/ferry"
)

// rollout is one Apply in progress.
type rollout struct {
	t        *Runtime
	spec     ferry.Spec // with rollout defaults
	key      string
	track    string // the replicas' balancer track (split.go)
	img      *image
	progress func(ferry.Progress)
}

// run converges the environment on the spec, one step at a time: stop
// what is beyond the desired count (old replicas first), else start a
// batch of new replicas and wait for them to be ready.
func (r *rollout) run(ctx context.Context) error {
	t := r.t
	desired := r.spec.Replicas
	ro := r.spec.Rollout
	for {
		t.mu.Lock()
		cur, old := t.partition(r.key)
		t.mu.Unlock()
		total := len(cur) + len(old)
		switch {
		case len(old) == 0 && len(cur) == desired:
			r.report("%d/%d replicas on %s", desired, desired, ferry.ShortDigest(r.spec.Digest))
			return nil
		case len(cur) > desired:
			r.stop(ctx, pickStop(cur, len(cur)-desired), "scaling down")
			continue
		case len(old) > 0 && total > desired:
			r.stop(ctx, pickStop(old, min(len(old), total-desired)), "replaced")
			continue
		}
		room := desired + ro.MaxSurge - total
		if room <= 0 {
			// No surge allowed: make room within the unavailability
			// budget.
			r.stop(ctx, pickStop(old, min(len(old), ro.MaxUnavailable)), "making room")
			continue
		}
		if err := r.startBatch(ctx, min(desired-len(cur), room), cur); err != nil {
			return err
		}
	}
}

// startBatch starts n new replicas at once and waits for all of them to
// be ready. On failure it stops them and returns a *ReplicaError for the
// first that failed.
func (r *rollout) startBatch(ctx context.Context, n int, cur []*replica) error {
	t := r.t
	used := map[int]bool{}
	for _, c := range cur {
		used[c.index] = true
	}
	var batch []*replica
	for index := 0; len(batch) < n; index++ {
		if used[index] {
			continue
		}
		rep, err := t.newReplica(r.spec, r.key, r.track, r.img, index)
		if err != nil {
			t.stop(context.WithoutCancel(ctx), batch, r.spec.Rollout.Grace)
			return fmt.Errorf("apply to %s: %w", t.cfg.Env, err)
		}
		batch = append(batch, rep)
		r.report("started %s (%s)", rep.id, ferry.ShortDigest(r.spec.Digest))
	}

	waitCtx, cancel := context.WithTimeout(ctx, r.spec.Rollout.ReadyTimeout)
	defer cancel()
	type result struct {
		rep    *replica
		reason string
	}
	results := make(chan result, len(batch))
	for _, rep := range batch {
		go func() { results <- result{rep, r.waitReady(waitCtx, ctx, rep)} }()
	}
	var failed *result
	for range batch {
		res := <-results
		if res.reason == "" {
			r.report("%s ready on %s", res.rep.id, res.rep.snapshot().addr)
			continue
		}
		if failed == nil {
			failed = &res
			cancel() // stop waiting for the others
		}
	}
	if failed == nil {
		return nil
	}
	logLines, _ := tailLog(failed.rep.log.name, t.cfg.LogFiles, logTail, -1)
	err := &ReplicaError{Env: t.cfg.Env, ID: failed.rep.id, Digest: r.spec.Digest, Reason: failed.reason, Log: logLines}
	r.report("%s failed: %s; stopping the new replicas", failed.rep.id, failed.reason)
	t.log.Warn("rollout failed", "replica", failed.rep.id, "digest", r.spec.Digest, "reason", failed.reason)
	t.stop(context.WithoutCancel(ctx), batch, r.spec.Rollout.Grace)
	return err
}

// waitReady waits for rep to be ready in the balancer and returns "", or
// why it will not be: crash-looping, not ready in time, or the rollout
// canceled (ctx, of which waitCtx is the deadline-bound child).
func (r *rollout) waitReady(waitCtx, ctx context.Context, rep *replica) string {
	select {
	case <-rep.ready:
		return ""
	case <-rep.looping:
		s := rep.snapshot()
		return fmt.Sprintf("crash-looping: its last %d runs ended before it was ready (last: %s)", s.failures, exitText(s.lastExit))
	case <-waitCtx.Done():
	}
	// Ready at the very last moment counts.
	select {
	case <-rep.ready:
		return ""
	default:
	}
	if ctx.Err() != nil {
		return fmt.Sprintf("rollout canceled: %v", context.Cause(ctx))
	}
	if waitCtx.Err() == context.Canceled {
		return "" // another replica of the batch failed first
	}
	reason := fmt.Sprintf("not ready within %v", r.spec.Rollout.ReadyTimeout)
	listening := false
	for _, b := range r.t.lb.Backends() {
		if b.ID == rep.id {
			listening = true
			if b.LastError != "" {
				reason += fmt.Sprintf(" (GET %s: %s)", r.t.cfg.Readiness, b.LastError)
			}
		}
	}
	if !listening {
		reason += fmt.Sprintf(" (nothing listens on %s)", rep.snapshot().addr)
	}
	if s := rep.snapshot(); s.restarts > 0 {
		reason += fmt.Sprintf("; restarted %d times, last exit: %s", s.restarts, exitText(s.lastExit))
	}
	return reason
}

// stop drains and stops replicas, reporting it.
func (r *rollout) stop(ctx context.Context, rs []*replica, why string) {
	if len(rs) == 0 {
		return
	}
	ids := make([]string, len(rs))
	for i, rep := range rs {
		ids[i] = rep.id
	}
	r.report("stopping %s (%s)", strings.Join(ids, ", "), why)
	r.t.stop(context.WithoutCancel(ctx), rs, r.spec.Rollout.Grace)
}

// pickStop chooses n of rs to stop: the not-ready ones first, then the
// newest.
func pickStop(rs []*replica, n int) []*replica {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b *replica) int {
		ra, rb := isReady(a), isReady(b)
		if ra != rb {
			if !ra {
				return -1
			}
			return 1
		}
		return b.index - a.index
	})
	return rs[:n]
}

func isReady(r *replica) bool {
	select {
	case <-r.ready:
		return r.snapshot().state == ferry.ReplicaRunning
	default:
		return false
	}
}

// report sends one progress step, counting replicas as they are now.
func (r *rollout) report(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.t.log.Info("rollout", "digest", ferry.ShortDigest(r.spec.Digest), "step", msg)
	if r.progress == nil {
		return
	}
	ready := map[string]bool{}
	for _, b := range r.t.lb.Backends() {
		ready[b.ID] = b.Ready
	}
	p := ferry.Progress{Time: r.t.now(), Message: msg, Desired: r.spec.Replicas}
	r.t.mu.Lock()
	for _, rep := range r.t.replicas {
		if ready[rep.id] && rep.track == r.track {
			p.Ready++
			if rep.key == r.key {
				p.Updated++
			}
		}
	}
	r.t.mu.Unlock()
	r.progress(p)
}
