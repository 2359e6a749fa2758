package kube

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
)

// Status reports the Deployment's pods: those of its ReplicaSets, not
// terminating, oldest first. Digest is the one digest all of them run
// (empty when they differ or none runs) and Commit the Deployment's
// ferry.dev/commit annotation when its ferry.dev/digest is that digest.
// During a split the canary's and the baseline's pods follow, each with
// its digest; Digest, Commit, Ready and Desired stay the Deployment's own
// (the stable track's), so a running canary is not taken for drift.
func (t *Runtime) Status(ctx context.Context) (ferry.Status, error) {
	if err := t.open("status of"); err != nil {
		return ferry.Status{}, err
	}
	d, err := t.deployment(ctx)
	if err != nil {
		return ferry.Status{}, fmt.Errorf("status of %s: %w", t.cfg.Env, err)
	}
	ci, err := t.container(d)
	if err != nil {
		return ferry.Status{}, fmt.Errorf("status of %s: %w", t.cfg.Env, err)
	}
	pods, err := t.currentPods(ctx, d)
	if err != nil {
		return ferry.Status{}, fmt.Errorf("status of %s: %w", t.cfg.Env, err)
	}
	name := d.Spec.Template.Spec.Containers[ci].Name
	reps := make([]ferry.Replica, len(pods))
	for i, p := range pods {
		reps[i] = replica(p, name)
	}
	st := ferry.NewStatus(int(replicaCount(d)), reps)
	if st.Digest != "" && st.Digest == d.Annotations[AnnotationDigest] {
		st.Commit = d.Annotations[AnnotationCommit]
	}
	split, err := t.splitPods(ctx, d)
	if err != nil {
		return ferry.Status{}, fmt.Errorf("status of %s: %w", t.cfg.Env, err)
	}
	for _, p := range split {
		st.Replicas = append(st.Replicas, replica(p, name))
	}
	return st, nil
}

// splitPods lists the pods of the canary's and the baseline's
// ReplicaSets that are not terminating, canary first, each oldest first.
// It reads only pods, which the runtime may list without the rights a
// split needs.
func (t *Runtime) splitPods(ctx context.Context, d *appsv1.Deployment) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "deployment %s in namespace %s has a selector ferry cannot read", d.Name, d.Namespace)
	}
	tracks := []string{ferry.TrackCanary, ferry.TrackBaseline}
	req, err := labels.NewRequirement(LabelTrack, selection.In, tracks)
	if err != nil {
		return nil, err
	}
	list, err := t.api.pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.Add(*req).String()})
	if err != nil {
		return nil, t.apiError(err, "list", "pods of the split of deployment "+d.Name)
	}
	var pods []*corev1.Pod
	for i := range list.Items {
		p := &list.Items[i]
		ref := metav1.GetControllerOf(p)
		track, hash := p.Labels[LabelTrack], p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		if ref != nil && p.DeletionTimestamp == nil && hash != "" && ref.Name == t.trackName(track)+"-"+hash {
			pods = append(pods, p)
		}
	}
	slices.SortFunc(pods, func(a, b *corev1.Pod) int {
		if c := slices.Index(tracks, a.Labels[LabelTrack]) - slices.Index(tracks, b.Labels[LabelTrack]); c != 0 {
			return c
		}
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return pods, nil
}

// currentPods lists the pods of d's ReplicaSets that are not terminating,
// oldest first.
func (t *Runtime) currentPods(ctx context.Context, d *appsv1.Deployment) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "deployment %s in namespace %s has a selector ferry cannot read", d.Name, d.Namespace)
	}
	opts := metav1.ListOptions{LabelSelector: sel.String()}
	rss, err := t.api.replicaSets(d.Namespace).List(ctx, opts)
	if err != nil {
		return nil, t.apiError(err, "list", "replicasets of deployment "+d.Name)
	}
	owned := map[types.UID]bool{}
	for i := range rss.Items {
		if ref := metav1.GetControllerOf(&rss.Items[i]); ref != nil && ref.UID == d.UID {
			owned[rss.Items[i].UID] = true
		}
	}
	list, err := t.api.pods(d.Namespace).List(ctx, opts)
	if err != nil {
		return nil, t.apiError(err, "list", "pods of deployment "+d.Name)
	}
	var pods []*corev1.Pod
	for i := range list.Items {
		p := &list.Items[i]
		if ref := metav1.GetControllerOf(p); ref != nil && owned[ref.UID] && p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	slices.SortFunc(pods, func(a, b *corev1.Pod) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return pods, nil
}

// replica describes pod p, whose ferry-managed container is named
// container.
func replica(p *corev1.Pod, container string) ferry.Replica {
	cs := mainStatus(p, container)
	r := ferry.Replica{
		ID:       p.Name,
		Digest:   podDigest(p, container),
		Ready:    podReady(p),
		Restarts: int(cs.RestartCount),
		State:    podState(p),
	}
	switch {
	case cs.State.Running != nil:
		r.Started = cs.State.Running.StartedAt.Time
	case p.Status.StartTime != nil:
		r.Started = p.Status.StartTime.Time
	}
	r.Started = r.Started.UTC().Truncate(time.Second)
	if r.Started.Unix() <= 0 {
		r.Started = time.Time{}
	}
	if ip := p.Status.PodIP; ip != "" {
		r.Addr = ip
		for _, c := range p.Spec.Containers {
			if c.Name == container && len(c.Ports) > 0 {
				r.Addr = net.JoinHostPort(ip, strconv.Itoa(int(c.Ports[0].ContainerPort)))
			}
		}
	}
	return r
}

// podDigest is the manifest digest the container runs: from the image
// the kubelet reports, else its image id, else the pod's spec.
func podDigest(p *corev1.Pod, container string) string {
	cs := mainStatus(p, container)
	for _, ref := range []string{cs.Image, cs.ImageID} {
		if d := digestOf(ref); d != "" {
			return d
		}
	}
	for _, c := range p.Spec.Containers {
		if c.Name == container {
			return digestOf(c.Image)
		}
	}
	return ""
}

// refDigest finds the digest of a reference by digest. It is compiled on
// first use: every ferry command, client ones too, links this package.
var refDigest = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`@(sha256:[0-9a-f]{64})$`) })

// digestOf is the digest of an image reference "…@sha256:<hex>"
// ("docker-pullable://…" and "docker.io/…" alike), "" for any other
// reference, a bare image id "sha256:…" included: that names the image's
// configuration, not its manifest.
func digestOf(ref string) string {
	if m := refDigest().FindStringSubmatch(ref); m != nil {
		return m[1]
	}
	return ""
}

// podState is running, starting, crash-looping, stopping or stopped.
func podState(p *corev1.Pod) string {
	switch {
	case p.DeletionTimestamp != nil:
		return ferry.ReplicaStopping
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		return ferry.ReplicaStopped
	case waitingReason(p) == "CrashLoopBackOff":
		return ferry.ReplicaCrashLooping
	case podReady(p):
		return ferry.ReplicaRunning
	}
	return ferry.ReplicaStarting
}
