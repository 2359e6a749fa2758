package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
)

// RolloutError says why a rollout failed: what the Deployment reported,
// or the new pod that made it fail.
type RolloutError struct {
	Env, Namespace, Deployment string
	// Ready counts the updated replicas that are ready, of Desired.
	Ready, Desired int
	Elapsed        time.Duration
	// Pod names the new pod that made the rollout fail, if one did.
	Pod string
	// Reason says what happened.
	Reason string
	// Err is the context's error when the rollout was canceled.
	Err error
}

func (e *RolloutError) Error() string {
	where := e.Env
	if where == "" {
		where = "namespace " + e.Namespace
	}
	return fmt.Sprintf("rollout of %s in %s: %d/%d updated replicas ready after %s: %s",
		e.Deployment, where, e.Ready, e.Desired, roundElapsed(e.Elapsed), e.Reason)
}

func (e *RolloutError) Unwrap() error { return e.Err }

// roundElapsed keeps a duration readable: milliseconds below a second,
// tenths of seconds below ten seconds, whole seconds above.
func roundElapsed(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// Failure thresholds for a new pod: a container restarted this often while
// in CrashLoopBackOff, or an image pull failed this often, fails the
// rollout at once rather than at its deadline.
const (
	crashRestarts = 3
	pullFailures  = 3
)

// follower follows one rollout of a Deployment.
type follower struct {
	t        *Runtime
	d        *appsv1.Deployment
	name     string // the container ferry sets
	image    string // the image the rollout is to
	pods     map[string]*corev1.Pod
	pulls    map[string]int    // failed image pulls seen, by pod
	waiting  map[string]string // last waiting reason seen, by pod
	start    time.Time
	limit    time.Duration
	progress func(ferry.Progress)
	last     ferry.Progress
	reported bool
}

// follow waits for d's rollout of the image of its container number ci to
// complete, within limit, reporting progress. It watches the Deployment
// and its pods; when a watch cannot be opened or breaks, it reads them
// every Poll and opens it again.
func (t *Runtime) follow(ctx context.Context, d *appsv1.Deployment, ci int, limit time.Duration, progress func(ferry.Progress)) error {
	c := d.Spec.Template.Spec.Containers[ci]
	f := &follower{
		t: t, d: d, name: c.Name, image: c.Image, start: t.now(), limit: limit, progress: progress,
		pods: map[string]*corev1.Pod{}, pulls: map[string]int{}, waiting: map[string]string{},
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return ferry.Wrap(err, ferry.EINVALID, "deployment %s in namespace %s has a selector ferry cannot read", d.Name, d.Namespace)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(t.cfg.Poll)
	defer tick.Stop()

	var dw, pw watch.Interface
	defer func() {
		for _, w := range []watch.Interface{dw, pw} {
			if w != nil {
				w.Stop()
			}
		}
	}()
	dw = t.watchDeployment(ctx, d.Name, d.ResourceVersion)
	if pw, err = f.syncPods(ctx, sel); err != nil {
		return err
	}
	for {
		if done, err := f.check(); done || err != nil {
			return err
		}
		select {
		case ev, ok := <-results(dw):
			if !ok || ev.Type == watch.Error {
				dw.Stop()
				dw = nil
				continue
			}
			if nd, ok := ev.Object.(*appsv1.Deployment); ok && ev.Type != watch.Bookmark {
				if ev.Type == watch.Deleted {
					return ferry.Errorf(ferry.ENOTFOUND, "rollout of %s: deployment %s deleted from namespace %s", t.cfg.Env, d.Name, d.Namespace)
				}
				f.d = nd
			}
		case ev, ok := <-results(pw):
			if !ok || ev.Type == watch.Error {
				pw.Stop()
				pw = nil
				continue
			}
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Bookmark {
				if ev.Type == watch.Deleted {
					delete(f.pods, p.Name)
				} else {
					f.pods[p.Name] = p
				}
			}
		case <-tick.C:
			if dw == nil {
				nd, err := t.deploymentNamed(ctx, d.Name)
				if err != nil {
					if ctx.Err() != nil {
						continue
					}
					if apierrors.IsNotFound(err) || ferry.ErrorCode(err) == ferry.ENOTFOUND {
						return fmt.Errorf("rollout of %s: %w", t.cfg.Env, err)
					}
					t.log.Warn("read deployment", "err", err)
					continue
				}
				f.d = nd
				dw = t.watchDeployment(ctx, d.Name, nd.ResourceVersion)
			}
			if pw == nil {
				if pw, err = f.syncPods(ctx, sel); err != nil && ctx.Err() == nil {
					t.log.Warn("list pods", "err", err)
				}
			}
		case <-deadline.C:
			ro := f.failure(fmt.Sprintf("not done within ferry's deadline of %s", limit), "")
			if st := rolloutState(f.d); st.msg != "" {
				ro.Reason += " (" + st.msg + ")"
			}
			return f.withPod(ro)
		case <-ctx.Done():
			ro := f.failure("canceled: "+context.Cause(ctx).Error(), "")
			ro.Err = ctx.Err()
			return ro
		}
	}
}

// results is w's channel, nil (blocking forever) without a watch.
func results(w watch.Interface) <-chan watch.Event {
	if w == nil {
		return nil
	}
	return w.ResultChan()
}

// watchDeployment watches the named Deployment from resource version rv;
// nil when the watch cannot be opened.
func (t *Runtime) watchDeployment(ctx context.Context, name, rv string) watch.Interface {
	w, err := t.api.deployments(t.cfg.Namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector:   "metadata.name=" + name,
		ResourceVersion: rv,
	})
	if err != nil {
		t.log.Debug("watch deployment; polling", "err", err)
		return nil
	}
	return w
}

// syncPods lists the pods the selector selects and watches them from
// there; the watch is nil when it cannot be opened.
func (f *follower) syncPods(ctx context.Context, sel labels.Selector) (watch.Interface, error) {
	pods := f.t.api.pods(f.t.cfg.Namespace)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, f.t.apiError(err, "list", "pods of deployment "+f.d.Name)
	}
	clear(f.pods)
	for i := range list.Items {
		f.pods[list.Items[i].Name] = &list.Items[i]
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: sel.String(), ResourceVersion: list.ResourceVersion})
	if err != nil {
		f.t.log.Debug("watch pods; polling", "err", err)
		return nil, nil
	}
	return w, nil
}

// check reports progress and whether the rollout is done or has failed.
func (f *follower) check() (bool, error) {
	if img := f.templateImage(); img != f.image {
		if img == "" {
			return false, ferry.Errorf(ferry.ECONFLICT, "rollout of %s: container %s was removed from deployment %s in namespace %s meanwhile", f.t.cfg.Env, f.name, f.d.Name, f.d.Namespace)
		}
		return false, ferry.Errorf(ferry.ECONFLICT, "rollout of %s: deployment %s in namespace %s was changed meanwhile: container %s now runs %s, not %s", f.t.cfg.Env, f.d.Name, f.d.Namespace, f.name, img, f.image)
	}
	st := rolloutState(f.d)
	pr := ferry.Progress{
		Message: st.msg,
		Ready:   int(f.d.Status.ReadyReplicas),
		Desired: int(replicaCount(f.d)),
	}
	if st.observed {
		pr.Updated = int(f.d.Status.UpdatedReplicas)
	}
	if st.done {
		// The Deployment counts what its ReplicaSets report, which may
		// not count a pod just created yet: wait for the pods too.
		if n := len(f.oldPods()); n > 0 {
			st.done = false
			pr.Message = fmt.Sprintf("%d old pods stopping", n)
		}
	}
	f.report(pr)
	if st.done {
		f.t.log.Info("rolled out", "of", f.d.Name, "replicas", pr.Desired, "elapsed", f.t.now().Sub(f.start))
		return true, nil
	}
	if st.failed != "" {
		return false, f.withPod(f.failure(st.failed, ""))
	}
	for _, p := range f.newPods() {
		c := mainStatus(p, f.name)
		reason := waitingReason(p)
		if reason == "ErrImagePull" && f.waiting[p.Name] != reason || reason == "ImagePullBackOff" && f.pulls[p.Name] == 0 {
			f.pulls[p.Name]++
		}
		f.waiting[p.Name] = reason
		if problem, fatal := podProblem(p, c, f.pulls[p.Name]); fatal {
			return false, f.failure("pod "+p.Name+": "+problem, p.Name)
		}
	}
	return false, nil
}

// report calls progress when anything but the time changed.
func (f *follower) report(p ferry.Progress) {
	if f.reported && p == f.last {
		return
	}
	f.last, f.reported = p, true
	if f.progress != nil {
		p.Time = f.t.now()
		f.progress(p)
	}
}

// failure is the rollout's error with the given reason.
func (f *follower) failure(reason, pod string) *RolloutError {
	ready := 0
	for _, p := range f.newPods() {
		if podReady(p) {
			ready++
		}
	}
	return &RolloutError{
		Env: f.t.cfg.Env, Namespace: f.d.Namespace, Deployment: f.d.Name,
		Ready: ready, Desired: int(replicaCount(f.d)), Elapsed: f.t.now().Sub(f.start),
		Pod: pod, Reason: reason,
	}
}

// withPod adds to e the first new pod that is not ready, and why.
func (f *follower) withPod(e *RolloutError) *RolloutError {
	for _, p := range f.newPods() {
		if podReady(p) {
			continue
		}
		problem, _ := podProblem(p, mainStatus(p, f.name), f.pulls[p.Name])
		e.Pod = p.Name
		e.Reason += ": pod " + p.Name + ": " + problem
		break
	}
	return e
}

// templateImage is the image of the container in the Deployment's
// template, "" when it has no such container.
func (f *follower) templateImage() string {
	for _, c := range f.d.Spec.Template.Spec.Containers {
		if c.Name == f.name {
			return c.Image
		}
	}
	return ""
}

// newPods are the Deployment's pods, not terminating, whose container
// runs the rollout's image, oldest first.
func (f *follower) newPods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range f.pods {
		if p.DeletionTimestamp != nil || !f.owns(p) {
			continue
		}
		for _, pc := range p.Spec.Containers {
			if pc.Name == f.name && pc.Image == f.image {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// oldPods are the Deployment's pods, not terminating, whose container
// runs another image than the rollout's.
func (f *follower) oldPods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range f.pods {
		if p.DeletionTimestamp != nil || !f.owns(p) {
			continue
		}
		for _, pc := range p.Spec.Containers {
			if pc.Name == f.name && pc.Image != f.image {
				out = append(out, p)
			}
		}
	}
	return out
}

// owns reports whether p is a pod of one of the Deployment's ReplicaSets,
// which the deployment controller names <deployment>-<pod-template-hash>.
// The selector is not enough: a canary's and a baseline's pods carry the
// labels the Deployment selects, and the baseline's run the stable image.
func (f *follower) owns(p *corev1.Pod) bool {
	ref := metav1.GetControllerOf(p)
	hash := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	return ref != nil && ref.Kind == "ReplicaSet" && hash != "" && ref.Name == f.d.Name+"-"+hash
}

// state is what a Deployment's status says of its rollout.
type state struct {
	observed bool   // the controller saw the current spec
	done     bool   // complete
	msg      string // where it is
	failed   string // why it cannot complete, when the Deployment says so
}

// rolloutState interprets a Deployment's status the way `kubectl rollout
// status` does, a little stricter: once the controller observed the
// current generation, the rollout is done when every desired replica is
// updated, available and ready and no other replica is left, old or
// extra; it has failed when the Progressing condition says
// ProgressDeadlineExceeded.
func rolloutState(d *appsv1.Deployment) state {
	s, want := d.Status, replicaCount(d)
	if s.ObservedGeneration < d.Generation {
		return state{msg: "waiting for the deployment controller"}
	}
	st := state{observed: true}
	switch {
	case s.UpdatedReplicas < want:
		st.msg = fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		st.msg = fmt.Sprintf("%d old replicas terminating", s.Replicas-s.UpdatedReplicas)
	case s.Replicas > want:
		st.msg = fmt.Sprintf("%d extra replicas terminating", s.Replicas-want)
	case s.AvailableReplicas < s.UpdatedReplicas:
		st.msg = fmt.Sprintf("%d of %d updated replicas available", s.AvailableReplicas, s.UpdatedReplicas)
	case s.ReadyReplicas < want:
		st.msg = fmt.Sprintf("%d of %d replicas ready", s.ReadyReplicas, want)
	default:
		st.done = true
		st.msg = fmt.Sprintf("%d of %d replicas updated and available", want, want)
		return st
	}
	for _, c := range s.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded":
			secs := int32(600)
			if d.Spec.ProgressDeadlineSeconds != nil {
				secs = *d.Spec.ProgressDeadlineSeconds
			}
			st.failed = fmt.Sprintf("the deployment made no progress for its progressDeadlineSeconds (%d): %s", secs, strings.TrimSuffix(c.Message, "."))
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			st.msg += "; " + c.Message
		}
	}
	return st
}

// rolloutDeadline is how long ferry waits for a rollout of desired
// replicas: the ready timeout for each batch of surge new replicas (at
// least one), plus slack for the controllers to act.
func rolloutDeadline(readyTimeout time.Duration, desired, surge int, slack time.Duration) time.Duration {
	surge = max(surge, 1)
	batches := (max(desired, 0) + surge - 1) / surge
	return readyTimeout*time.Duration(batches) + slack
}

// maxSurge is how many new replicas d's strategy starts at a time:
// maxSurge of a rolling update (25 % when unset, rounded up, as the
// controller does), every replica at once when recreating.
func maxSurge(d *appsv1.Deployment, desired int) int {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return desired
	}
	v := intstr.FromString("25%")
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		v = *ru.MaxSurge
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, desired, true)
	if err != nil {
		return 1
	}
	return n
}

// mainStatus is the status of the named container of p (zero when the
// kubelet has not reported it yet).
func mainStatus(p *corev1.Pod, name string) corev1.ContainerStatus {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == name {
			return c
		}
	}
	return corev1.ContainerStatus{Name: name}
}

// waitingReason is the first waiting reason among p's init and app
// containers, "" when none waits.
func waitingReason(p *corev1.Pod) string {
	for _, c := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if w := c.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" && w.Reason != "ContainerCreating" {
			return w.Reason
		}
	}
	return ""
}

// podProblem says why a new pod is not ready, and whether the rollout
// cannot succeed because of it: a container in CrashLoopBackOff restarted
// crashRestarts times, pullFailures failed image pulls seen, or an image
// reference the kubelet rejects.
func podProblem(p *corev1.Pod, main corev1.ContainerStatus, pulls int) (string, bool) {
	if p.DeletionTimestamp != nil {
		return "terminating", false
	}
	for _, c := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		w := c.State.Waiting
		if w == nil {
			continue
		}
		who := ""
		if c.Name != main.Name {
			who = "container " + c.Name + ": "
		}
		switch w.Reason {
		case "CrashLoopBackOff":
			msg := fmt.Sprintf("%sCrashLoopBackOff (%d restarts", who, c.RestartCount)
			if t := c.LastTerminationState.Terminated; t != nil {
				msg += fmt.Sprintf(", last exit code %d", t.ExitCode)
				if t.Reason != "" {
					msg += " " + t.Reason
				}
			}
			return msg + ")", c.RestartCount >= crashRestarts
		case "ErrImagePull", "ImagePullBackOff":
			return fmt.Sprintf("%s%s (%d failed pulls): %s", who, w.Reason, pulls, w.Message), pulls >= pullFailures
		case "InvalidImageName", "ErrImageNeverPull":
			return fmt.Sprintf("%s%s: %s", who, w.Reason, w.Message), true
		case "", "PodInitializing", "ContainerCreating":
		default:
			msg := who + w.Reason
			if w.Message != "" {
				msg += ": " + w.Message
			}
			return msg, false
		}
	}
	if p.Status.Phase == corev1.PodPending {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return fmt.Sprintf("not scheduled: %s", c.Message), false
			}
		}
		return "pending", false
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		msg := strings.ToLower(string(p.Status.Phase))
		if p.Status.Message != "" {
			msg += ": " + p.Status.Message
		}
		return msg, false
	}
	if podReady(p) {
		return "ready", false
	}
	if main.RestartCount > 0 {
		return fmt.Sprintf("not ready (%d restarts)", main.RestartCount), false
	}
	return "not ready", false
}

// podReady reports p's Ready condition.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
