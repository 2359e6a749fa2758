package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Apply sets the container's image to spec.Image@spec.Digest and ferry's
// annotations on the Deployment and its pod template, and the replica
// count when spec.Replicas > 0 and no HPA is configured (0 keeps the
// cluster's count; during a split, the split's count for the stable
// track is kept, and EndSplit restores the count from before the split),
// then follows the rollout until it completes, fails or
// passes its deadline (see the package comment). It reports progress on
// every change of the Deployment's counts.
//
// When the Deployment already runs the image on every replica, with the
// replica count asked for, Apply patches nothing but the Deployment's own
// annotations, and only when they differ. Whenever the pod template
// already names the image, its annotations are left as they are: they keep
// saying which deployment started the pods, and the same digest deployed
// again (a promotion, a redeploy, a new replica count) restarts nothing.
func (t *Runtime) Apply(ctx context.Context, spec ferry.Spec, progress func(ferry.Progress)) error {
	if err := t.open("apply to"); err != nil {
		return err
	}
	if err := t.checkSpec(spec); err != nil {
		return err
	}
	t.mu.Lock()
	t.rollout = spec.Rollout
	t.mu.Unlock()

	d, err := t.deployment(ctx)
	if err != nil {
		return fmt.Errorf("apply to %s: %w", t.cfg.Env, err)
	}
	ci, err := t.container(d)
	if err != nil {
		return fmt.Errorf("apply to %s: %w", t.cfg.Env, err)
	}
	if d.Spec.Paused {
		return ferry.Errorf(ferry.EINVALID, "apply to %s: deployment %s in namespace %s is paused (kubectl rollout resume)", t.cfg.Env, d.Name, d.Namespace)
	}
	image := spec.Image + "@" + spec.Digest
	split, err := t.splitRuns(ctx)
	if err != nil {
		return fmt.Errorf("apply to %s: %w", t.cfg.Env, err)
	}
	var replicas *int32
	if spec.Replicas > 0 && t.cfg.HPA == "" && !split {
		r := int32(spec.Replicas)
		replicas = &r
	}
	ann := annotations(spec)
	name := d.Spec.Template.Spec.Containers[ci].Name

	sameTemplate := sameImage(d.Spec.Template.Spec.Containers[ci].Image, image)
	if sameTemplate && (replicas == nil || *replicas == replicaCount(d)) && rolloutState(d).done {
		if annotationsMatch(d.Annotations, ann) {
			return nil
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
		if err != nil {
			return fmt.Errorf("apply to %s: %w", t.cfg.Env, err)
		}
		if _, err := t.api.deployments(t.cfg.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "ferry"}); err != nil {
			return fmt.Errorf("apply to %s: %w", t.cfg.Env, t.apiError(err, "patch", "deployment "+d.Name))
		}
		t.log.Info("deployment already runs the digest; annotations updated", "digest", spec.Digest, "deployment_id", spec.DeploymentID)
		return nil
	}

	patch, err := deploymentPatch(name, image, ann, replicas, !sameTemplate)
	if err != nil {
		return fmt.Errorf("apply to %s: %w", t.cfg.Env, err)
	}
	d, err = t.api.deployments(t.cfg.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "ferry"})
	if err != nil {
		return fmt.Errorf("apply to %s: %w", t.cfg.Env, t.apiError(err, "patch", "deployment "+t.cfg.Deployment))
	}
	desired := int(replicaCount(d))
	limit := rolloutDeadline(spec.Rollout.WithDefaults().ReadyTimeout, desired, maxSurge(d, desired), t.slack)
	t.log.Info("rolling out", "digest", spec.Digest, "replicas", desired, "generation", d.Generation, "deadline", limit)
	return t.follow(ctx, d, ci, limit, progress)
}

// checkSpec rejects a spec that cannot name an image by digest.
func (t *Runtime) checkSpec(spec ferry.Spec) error {
	switch {
	case spec.Env != "" && t.cfg.Env != "" && spec.Env != t.cfg.Env:
		return ferry.Errorf(ferry.EINVALID, "apply to %s: spec is for environment %q", t.cfg.Env, spec.Env)
	case spec.Image == "" || strings.Contains(spec.Image, "@"):
		return ferry.Errorf(ferry.EINVALID, "apply to %s: image %q: want a repository without digest", t.cfg.Env, spec.Image)
	case !ferry.ValidDigest(spec.Digest):
		return ferry.Errorf(ferry.EINVALID, "apply to %s: digest %q: want sha256:<64 hex>", t.cfg.Env, spec.Digest)
	case spec.Replicas < 0:
		return ferry.Errorf(ferry.EINVALID, "apply to %s: %d replicas", t.cfg.Env, spec.Replicas)
	}
	return nil
}

// annotations are ferry's annotations for spec; nil values remove an
// annotation (an empty release, commit or deployment id).
func annotations(spec ferry.Spec) map[string]*string {
	val := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	id := ""
	if spec.DeploymentID != 0 {
		id = strconv.FormatInt(spec.DeploymentID, 10)
	}
	return map[string]*string{
		AnnotationCommit:       val(spec.Commit),
		AnnotationRelease:      val(spec.Release),
		AnnotationDeploymentID: val(id),
		AnnotationDigest:       val(spec.Digest),
	}
}

// annotationsMatch reports whether have carries want (nil: absent).
func annotationsMatch(have map[string]string, want map[string]*string) bool {
	for k, v := range want {
		got, ok := have[k]
		if v == nil && ok || v != nil && (!ok || got != *v) {
			return false
		}
	}
	return true
}

// deploymentPatch is the strategic merge patch that sets ferry's
// annotations on the Deployment, the replica count when not nil, and, with
// template, the named container's image and ferry's annotations on the pod
// template. Containers merge by name, so the others are left alone.
func deploymentPatch(container, image string, ann map[string]*string, replicas *int32, template bool) ([]byte, error) {
	spec := map[string]any{}
	if template {
		spec["template"] = map[string]any{
			"metadata": map[string]any{"annotations": ann},
			"spec": map[string]any{
				"containers": []any{map[string]any{"name": container, "image": image}},
			},
		}
	}
	if replicas != nil {
		spec["replicas"] = *replicas
	}
	patch := map[string]any{"metadata": map[string]any{"annotations": ann}}
	if len(spec) > 0 {
		patch["spec"] = spec
	}
	return json.Marshal(patch)
}

// sameImage reports whether two image references name the same digest of
// the same repository; a tag next to the digest does not count.
func sameImage(a, b string) bool {
	ra, da, oka := strings.Cut(a, "@")
	rb, db, okb := strings.Cut(b, "@")
	return oka && okb && da == db && stripTag(ra) == stripTag(rb)
}

// stripTag removes the tag of a repository reference ("host:5000/app:v1" →
// "host:5000/app").
func stripTag(ref string) string {
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon]
	}
	return ref
}

// replicaCount is the Deployment's desired replica count (1 when unset,
// as the API defaults it).
func replicaCount(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}
