package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// A canary on Kubernetes, without a mesh, is a matter of replica counts:
// the Service sends each connection to one of the ready pods it selects,
// so a track's share of the requests is its share of those pods.
//
// Split runs the canary as a Deployment <name>-canary and the baseline as
// <name>-baseline: copies of the environment's Deployment, whose pod
// template keeps every label the Service selects and adds these two, which
// a Prometheus query can select by:
//
//	ferry.dev/track    canary or baseline (ferry.TrackCanary, TrackBaseline)
//	ferry.dev/version  the short digest the pods run (Version)
//
// Their selector is the environment's plus the track, so neither adopts the
// other's pods; the environment's Deployment selects their pods as well but
// owns only its ReplicaSets', which is what Status, Logs and a rollout
// count. Each carries the split's total in ferry.dev/split-replicas: the
// environment's replica count before the split, which EndSplit restores,
// and which survives a restart of ferry in the cluster rather than in
// memory. Both are owned (without blocking deletion) by the environment's
// Deployment, so deleting it removes them too.
const (
	LabelTrack   = "ferry.dev/track"
	LabelVersion = "ferry.dev/version"
	// AnnotationSplitReplicas is the environment's replica count before
	// the split.
	AnnotationSplitReplicas = "ferry.dev/split-replicas"
)

// Version is the version label of pods running digest: its first 12 hex
// digits (a label value cannot hold "sha256:").
func Version(digest string) string {
	return strings.TrimPrefix(ferry.ShortDigest(digest), "sha256:")
}

// Versions maps each track of s that a canary's analysis reads figures of
// to its pods' version label, for package prometheus: the canary's, and
// the baseline's with s.Baseline, else the stable track's. The
// environment's own pods carry no ferry.dev/version (ferry does not change
// their template's labels, which would restart them on a revert), so
// without a baseline a query must find the stable pods by labels of their
// own: a canary on Kubernetes is best judged against a baseline.
func Versions(s ferry.Split) map[string]string {
	other := ferry.TrackStable
	if s.Baseline {
		other = ferry.TrackBaseline
	}
	return map[string]string{ferry.TrackCanary: Version(s.Canary.Digest), other: Version(s.Stable.Digest)}
}

// plan is a split's replica counts.
type plan struct {
	canary, baseline, stable int
}

// planSplit divides total replicas between the tracks for weight percent
// to the canary (and as many to the baseline): the canary gets the nearest
// count to its share, at least one; the baseline as many; stable the rest,
// but at least one while the weights leave it a share. With fixedStable
// (an autoscaler owns the environment's count) stable keeps total and the
// canary and baseline come on top. Weight 0 runs no canary pod: without a
// mesh, a ready pod the Service selects takes its share.
func planSplit(total, weight int, baseline, fixedStable bool) plan {
	if weight <= 0 {
		return plan{stable: total}
	}
	p := plan{canary: max(1, (total*weight+50)/100)}
	if baseline {
		p.baseline = p.canary
	}
	if fixedStable {
		p.stable = total
		return p
	}
	p.stable = max(total-p.canary-p.baseline, 0)
	stableShare := 100 - weight
	if baseline {
		stableShare -= weight
	}
	if stableShare > 0 {
		p.stable = max(p.stable, 1)
	}
	return p
}

// String says what share of the requests each track gets, as the Service
// spreads them over ready pods.
func (p plan) String() string {
	n := p.canary + p.baseline + p.stable
	share := func(k int) string {
		if n == 0 {
			return "0.0 %"
		}
		return strconv.FormatFloat(100*float64(k)/float64(n), 'f', 1, 64) + " %"
	}
	s := fmt.Sprintf("canary %d of %d replicas (%s of requests)", p.canary, n, share(p.canary))
	if p.baseline > 0 {
		s += fmt.Sprintf(", baseline %d (%s)", p.baseline, share(p.baseline))
	}
	return s + fmt.Sprintf(", stable %d (%s)", p.stable, share(p.stable))
}

// Split runs s on the cluster (ferry's canary contract; see the comment on
// LabelTrack): it creates or scales <name>-canary running s.Canary and,
// with s.Baseline, <name>-baseline running s.Stable, at the counts
// planSplit gives for the environment's total, waits until they are
// available, then scales the environment's Deployment down so the total
// stays as it was (an HPA's Deployment is left alone: the autoscaler owns
// its count, and the canary and baseline come on top). Whatever grows is
// grown and waited for before anything shrinks, so the environment never
// serves with fewer replicas. The last progress message says the share of
// requests each track really gets, which the replica counts decide (asked
// 5 % of 4 replicas, the canary gets 1 of 4).
//
// Called again, Split only scales: a Deployment already running its digest
// keeps its pods. When the canary (or baseline) does not become available
// — it crash-loops, cannot pull its image or is not ready in its ready
// timeout — Split ends the split as EndSplit does and returns the rollout's
// error.
func (t *Runtime) Split(ctx context.Context, s ferry.Split, progress func(ferry.Progress)) error {
	if err := t.open("split"); err != nil {
		return err
	}
	if err := t.checkSplit(s); err != nil {
		return err
	}
	d, err := t.deployment(ctx)
	if err != nil {
		return fmt.Errorf("split %s: %w", t.cfg.Env, err)
	}
	ci, err := t.container(d)
	if err != nil {
		return fmt.Errorf("split %s: %w", t.cfg.Env, err)
	}
	if d.Spec.Paused {
		return ferry.Errorf(ferry.EINVALID, "split %s: deployment %s in namespace %s is paused (kubectl rollout resume)", t.cfg.Env, d.Name, d.Namespace)
	}
	running, err := t.splitDeployments(ctx)
	if err != nil {
		return fmt.Errorf("split %s: %w", t.cfg.Env, err)
	}
	total := splitTotal(running)
	if total == 0 || t.cfg.HPA != "" {
		total = int(replicaCount(d))
	}
	if total == 0 {
		return ferry.Errorf(ferry.EINVALID, "split %s: deployment %s in namespace %s runs no replica to share the requests with a canary", t.cfg.Env, d.Name, d.Namespace)
	}
	p := planSplit(total, s.Weight, s.Baseline, t.cfg.HPA != "")
	t.log.Info("split", "canary", s.Canary.Digest, "weight", s.Weight, "baseline", s.Baseline, "total", total, "plan", p.String())

	// The parts of the split, in the order they grow; every one that
	// should run is waited for, so a Split repeated after a crash also
	// waits for what the first one started.
	type part struct {
		track string
		spec  ferry.Spec
		want  int
	}
	type wait struct {
		d  *appsv1.Deployment
		ro ferry.Rollout
	}
	parts := []part{{ferry.TrackCanary, s.Canary, p.canary}, {ferry.TrackBaseline, s.Stable, p.baseline}}
	var waits []wait
	for _, pt := range parts {
		if pt.want == 0 {
			continue
		}
		sd, err := t.ensureTrack(ctx, d, ci, pt.track, pt.spec, total, running[pt.track])
		if err == nil && int(replicaCount(sd)) < pt.want {
			sd, err = t.scaleTo(ctx, sd.Name, pt.want)
		}
		if err != nil {
			return t.abortSplit(ctx, fmt.Errorf("split %s: %w", t.cfg.Env, err))
		}
		running[pt.track] = sd
		waits = append(waits, wait{sd, pt.spec.Rollout})
	}
	if t.cfg.HPA == "" && int(replicaCount(d)) < p.stable {
		if d, err = t.scaleTo(ctx, d.Name, p.stable); err != nil {
			return t.abortSplit(ctx, fmt.Errorf("split %s: %w", t.cfg.Env, err))
		}
		waits = append(waits, wait{d, s.Stable.Rollout})
	}
	for _, w := range waits {
		if err := t.follow(ctx, w.d, ci, t.deadline(w.ro, w.d), progress); err != nil {
			return t.abortSplit(ctx, fmt.Errorf("split %s: %w", t.cfg.Env, err))
		}
	}

	// Then what shrinks: the environment's Deployment to its share, and a
	// canary or baseline above theirs.
	var shrunk []*appsv1.Deployment
	if t.cfg.HPA == "" && int(replicaCount(d)) > p.stable {
		if d, err = t.scaleTo(ctx, d.Name, p.stable); err != nil {
			return fmt.Errorf("split %s: %w", t.cfg.Env, err)
		}
		shrunk = append(shrunk, d)
	}
	for _, pt := range parts {
		sd := running[pt.track]
		if sd == nil || int(replicaCount(sd)) <= pt.want {
			continue
		}
		if sd, err = t.scaleTo(ctx, sd.Name, pt.want); err != nil {
			return fmt.Errorf("split %s: %w", t.cfg.Env, err)
		}
		shrunk = append(shrunk, sd)
	}
	for _, sd := range shrunk {
		if err := t.follow(ctx, sd, ci, t.deadline(s.Stable.Rollout, sd), progress); err != nil {
			return fmt.Errorf("split %s: %w", t.cfg.Env, err)
		}
	}
	msg := p.String() + fmt.Sprintf(", asked %d %%", s.Weight)
	if t.cfg.HPA != "" {
		msg += "; stable left at its autoscaler's count"
	}
	if progress != nil {
		progress(ferry.Progress{Time: t.now(), Message: msg, Ready: p.canary + p.baseline + p.stable, Updated: p.canary, Desired: p.canary + p.baseline + p.stable})
	}
	t.log.Info("split running", "shares", msg)
	return nil
}

// checkSplit rejects a split that cannot run.
func (t *Runtime) checkSplit(s ferry.Split) error {
	for _, sp := range []ferry.Spec{s.Canary, s.Stable} {
		if err := t.checkSpec(sp); err != nil {
			return fmt.Errorf("split: %w", err)
		}
	}
	most := 99
	if s.Baseline {
		most = 50
	}
	if s.Weight < 0 || s.Weight > most {
		return ferry.Errorf(ferry.EINVALID, "split %s: weight %d %%: want 0 to %d", t.cfg.Env, s.Weight, most)
	}
	return nil
}

// deadline is how long a rollout of d's replicas may take under ro.
func (t *Runtime) deadline(ro ferry.Rollout, d *appsv1.Deployment) time.Duration {
	n := int(replicaCount(d))
	return rolloutDeadline(ro.WithDefaults().ReadyTimeout, n, maxSurge(d, n), t.slack)
}

// trackName is the Deployment of a track of the environment's split.
func (t *Runtime) trackName(track string) string { return t.cfg.Deployment + "-" + track }

// splitDeployments reads the canary and baseline Deployments that exist,
// by track. One the runtime may not read does not exist for it: it could
// not have made it (a Role naming only the environment's Deployment, as
// before canaries), and creating it fails with a clear refusal.
func (t *Runtime) splitDeployments(ctx context.Context) (map[string]*appsv1.Deployment, error) {
	out := map[string]*appsv1.Deployment{}
	for _, track := range []string{ferry.TrackCanary, ferry.TrackBaseline} {
		d, err := t.api.deployments(t.cfg.Namespace).Get(ctx, t.trackName(track), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
			continue
		case err != nil:
			return nil, t.apiError(err, "get", "deployment "+t.trackName(track))
		}
		out[track] = d
	}
	return out, nil
}

// splitRuns reports whether a canary or baseline Deployment exists.
func (t *Runtime) splitRuns(ctx context.Context) (bool, error) {
	running, err := t.splitDeployments(ctx)
	return len(running) > 0, err
}

// splitTotal is the environment's replica count before the split that
// running records; 0 when none does.
func splitTotal(running map[string]*appsv1.Deployment) int {
	for _, d := range running {
		if n, err := strconv.Atoi(d.Annotations[AnnotationSplitReplicas]); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// ensureTrack makes the track's Deployment run spec: created from the
// environment's Deployment d with no replicas yet when missing, its
// template replaced when it runs another digest, left as it is otherwise.
func (t *Runtime) ensureTrack(ctx context.Context, d *appsv1.Deployment, ci int, track string, spec ferry.Spec, total int, have *appsv1.Deployment) (*appsv1.Deployment, error) {
	want := trackDeployment(d, ci, t.trackName(track), track, spec, total)
	deps := t.api.deployments(t.cfg.Namespace)
	if have == nil {
		created, err := deps.Create(ctx, want, metav1.CreateOptions{FieldManager: "ferry"})
		if err != nil {
			return nil, t.apiError(err, "create", "deployment "+want.Name)
		}
		t.log.Info("created", "split", want.Name, "digest", spec.Digest)
		return created, nil
	}
	if sameImage(have.Spec.Template.Spec.Containers[min(ci, len(have.Spec.Template.Spec.Containers)-1)].Image, spec.Image+"@"+spec.Digest) &&
		have.Annotations[AnnotationSplitReplicas] == want.Annotations[AnnotationSplitReplicas] {
		return have, nil
	}
	// Another digest (or another total): the template and annotations are
	// ferry's to replace; the replica count stays until scaleTo.
	upd := have.DeepCopy()
	upd.Labels, upd.Annotations = want.Labels, want.Annotations
	upd.Spec.Template = want.Spec.Template
	updated, err := deps.Update(ctx, upd, metav1.UpdateOptions{FieldManager: "ferry"})
	if err != nil {
		return nil, t.apiError(err, "update", "deployment "+upd.Name)
	}
	return updated, nil
}

// trackDeployment is the Deployment of a track: d's pod template running
// spec's image, with the track and version labels and ferry's annotations
// for spec, selected by d's selector plus the track, with no replicas.
func trackDeployment(d *appsv1.Deployment, ci int, name, track string, spec ferry.Spec, total int) *appsv1.Deployment {
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Labels = maps.Clone(tmpl.Labels)
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[LabelTrack] = track
	tmpl.Labels[LabelVersion] = Version(spec.Digest)
	tmpl.Annotations = maps.Clone(tmpl.Annotations)
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	for k, v := range annotations(spec) {
		delete(tmpl.Annotations, k)
		if v != nil {
			tmpl.Annotations[k] = *v
		}
	}
	tmpl.Spec.Containers[ci].Image = spec.Image + "@" + spec.Digest

	sel := d.Spec.Selector.DeepCopy()
	sel.MatchLabels = maps.Clone(sel.MatchLabels)
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[LabelTrack] = track

	labels := maps.Clone(d.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelTrack] = track
	ann := maps.Clone(tmpl.Annotations)
	for k := range ann {
		if !strings.HasPrefix(k, "ferry.dev/") {
			delete(ann, k)
		}
	}
	ann[AnnotationSplitReplicas] = strconv.Itoa(total)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: d.Namespace, Labels: labels, Annotations: ann,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID,
			}},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:                new(int32(0)),
			Selector:                sel,
			Template:                tmpl,
			Strategy:                *d.Spec.Strategy.DeepCopy(),
			MinReadySeconds:         d.Spec.MinReadySeconds,
			ProgressDeadlineSeconds: d.Spec.ProgressDeadlineSeconds,
			RevisionHistoryLimit:    new(int32(1)),
		},
	}
}

// scaleTo sets the named Deployment's replica count through its scale
// subresource and reads it back.
func (t *Runtime) scaleTo(ctx context.Context, name string, replicas int) (*appsv1.Deployment, error) {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"replicas": replicas}})
	if err != nil {
		return nil, err
	}
	if _, err := t.api.deployments(t.cfg.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "ferry"}, "scale"); err != nil {
		return nil, t.apiError(err, "patch", "deployments/scale "+name)
	}
	t.log.Info("scaled", "split", name, "replicas", replicas)
	return t.deploymentNamed(ctx, name)
}

// abortSplit ends the split after err and returns err, with the end's own
// failure if it had one.
func (t *Runtime) abortSplit(ctx context.Context, err error) error {
	t.log.Warn("split failed; ending it", "err", err)
	if end := t.EndSplit(context.WithoutCancel(ctx)); end != nil {
		return errors.Join(err, end)
	}
	return err
}

// EndSplit ends the split. An aborted canary is scaled to 0 at once (its
// pods leave the Service's endpoints as they start terminating, each
// drained by its own preStop hook and grace period); the environment's
// Deployment is then scaled back to its count from before the split and
// waited for; then the baseline, and a promoted canary (one whose digest
// the environment's Deployment runs by now: Apply came first), are scaled
// to 0, so a promotion never serves with fewer replicas; and both
// Deployments are deleted. Each step can be repeated: EndSplit after a
// crash in the middle finishes the job, and without a split it does
// nothing.
func (t *Runtime) EndSplit(ctx context.Context) error {
	if err := t.open("end the split of"); err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("end the split of %s: %w", t.cfg.Env, err) }
	running, err := t.splitDeployments(ctx)
	if err != nil {
		return fail(err)
	}
	if len(running) == 0 {
		return nil
	}
	d, err := t.deployment(ctx)
	if err != nil {
		return fail(err)
	}
	ci, err := t.container(d)
	if err != nil {
		return fail(err)
	}
	canary := running[ferry.TrackCanary]
	promoted := canary != nil && len(canary.Spec.Template.Spec.Containers) > ci &&
		sameImage(canary.Spec.Template.Spec.Containers[ci].Image, d.Spec.Template.Spec.Containers[ci].Image)
	if canary != nil && !promoted && replicaCount(canary) > 0 {
		if _, err := t.scaleTo(ctx, canary.Name, 0); err != nil {
			return fail(err)
		}
	}
	if total := splitTotal(running); total > 0 && t.cfg.HPA == "" && int(replicaCount(d)) != total {
		if d, err = t.scaleTo(ctx, d.Name, total); err != nil {
			return fail(err)
		}
		t.mu.Lock()
		ro := t.rollout
		t.mu.Unlock()
		if err := t.follow(ctx, d, ci, t.deadline(ro, d), nil); err != nil {
			return fail(err)
		}
	}
	for _, track := range []string{ferry.TrackBaseline, ferry.TrackCanary} {
		sd := running[track]
		if sd == nil {
			continue
		}
		if replicaCount(sd) > 0 {
			if _, err := t.scaleTo(ctx, sd.Name, 0); err != nil {
				return fail(err)
			}
		}
		err := t.api.deployments(t.cfg.Namespace).Delete(ctx, sd.Name, metav1.DeleteOptions{PropagationPolicy: new(metav1.DeletePropagationBackground)})
		if err != nil && !apierrors.IsNotFound(err) {
			return fail(t.apiError(err, "delete", "deployment "+sd.Name))
		}
		t.log.Info("deleted", "split", sd.Name)
	}
	return nil
}
