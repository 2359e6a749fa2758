package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ferryhq/ferry"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Scale sets the number of replicas of what runs.
//
// With an HPA configured it patches the autoscaler's bounds instead:
// minReplicas becomes replicas, and maxReplicas is raised to replicas when
// below it, never lowered. It returns once the bounds are set; the
// autoscaler brings the Deployment within them at its next sync (15 s by
// default) and may run more replicas than the minimum when the load asks.
// An HPA cannot scale to zero.
//
// Without an HPA it patches the Deployment's scale subresource and waits
// until that many replicas are ready, within the last Apply's ready
// timeout (ferry's default before any) plus 30 s.
func (t *Runtime) Scale(ctx context.Context, replicas int) error {
	if err := t.open("scale"); err != nil {
		return err
	}
	if replicas < 0 {
		return ferry.Errorf(ferry.EINVALID, "scale %s: %d replicas", t.cfg.Env, replicas)
	}
	if split, err := t.splitRuns(ctx); err != nil {
		return fmt.Errorf("scale %s: %w", t.cfg.Env, err)
	} else if split {
		return ferry.Errorf(ferry.ECONFLICT, "scale %s: a canary runs beside deployment %s, whose replica counts it sets; scale once it has ended", t.cfg.Env, t.cfg.Deployment)
	}
	if t.cfg.HPA != "" {
		return t.scaleHPA(ctx, replicas)
	}
	d, err := t.deployment(ctx)
	if err != nil {
		return fmt.Errorf("scale %s: %w", t.cfg.Env, err)
	}
	ci, err := t.container(d)
	if err != nil {
		return fmt.Errorf("scale %s: %w", t.cfg.Env, err)
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"replicas": replicas}})
	if err != nil {
		return fmt.Errorf("scale %s: %w", t.cfg.Env, err)
	}
	deps := t.api.deployments(t.cfg.Namespace)
	if _, err := deps.Patch(ctx, d.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "ferry"}, "scale"); err != nil {
		return fmt.Errorf("scale %s: %w", t.cfg.Env, t.apiError(err, "patch", "deployments/scale "+d.Name))
	}
	if d, err = t.deployment(ctx); err != nil {
		return fmt.Errorf("scale %s: %w", t.cfg.Env, err)
	}
	t.mu.Lock()
	ro := t.rollout
	t.mu.Unlock()
	limit := rolloutDeadline(ro.WithDefaults().ReadyTimeout, 1, 1, t.slack)
	t.log.Info("scaling", "replicas", replicas, "deadline", limit)
	return t.follow(ctx, d, ci, limit, nil)
}

// scaleHPA sets the autoscaler's bounds for replicas.
func (t *Runtime) scaleHPA(ctx context.Context, replicas int) error {
	if replicas < 1 {
		return ferry.Errorf(ferry.EINVALID, "scale %s: horizontal pod autoscaler %s keeps at least 1 replica; scale to 0 needs a deployment without one", t.cfg.Env, t.cfg.HPA)
	}
	hpas := t.api.hpas(t.cfg.Namespace)
	h, err := hpas.Get(ctx, t.cfg.HPA, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("scale %s: %w", t.cfg.Env, t.apiError(err, "get", "horizontalpodautoscaler "+t.cfg.HPA))
	}
	hi := max(int(h.Spec.MaxReplicas), replicas)
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"minReplicas": replicas, "maxReplicas": hi}})
	if err != nil {
		return fmt.Errorf("scale %s: %w", t.cfg.Env, err)
	}
	if _, err := hpas.Patch(ctx, h.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "ferry"}); err != nil {
		return fmt.Errorf("scale %s: %w", t.cfg.Env, t.apiError(err, "patch", "horizontalpodautoscaler "+h.Name))
	}
	t.log.Info("autoscaler bounds set", "hpa", h.Name, "min", replicas, "max", hi)
	return nil
}
