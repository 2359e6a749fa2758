package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/kubetest"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// progressLog records the progress an Apply reports.
type progressLog struct {
	mu sync.Mutex
	ps []ferry.Progress
}

func (l *progressLog) add(p ferry.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ps = append(l.ps, p)
}

func (l *progressLog) all() []ferry.Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ps)
}

func TestApplyRollsOut(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	old := spec(newDigest(), 1, 4)
	c.create(testDeployment(ns, old))
	kt := c.target(ns)
	ctx := context.Background()

	next := spec(newDigest(), 2, 4)
	w := c.watchServing(ns, "", 4) // any digest: never fewer than 4 ready
	var log progressLog
	if err := kt.Apply(ctx, next, log.add); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	w.end(t)

	d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Spec.Template.Spec.Containers[0].Image, testImage+"@"+next.Digest; got != want {
		t.Errorf("image = %s, want %s", got, want)
	}
	want := map[string]string{
		AnnotationCommit: next.Commit, AnnotationRelease: next.Release,
		AnnotationDeploymentID: "2", AnnotationDigest: next.Digest,
	}
	for k, v := range want {
		if got := d.Annotations[k]; got != v {
			t.Errorf("deployment annotation %s = %q, want %q", k, got, v)
		}
		if got := d.Spec.Template.Annotations[k]; got != v {
			t.Errorf("template annotation %s = %q, want %q", k, got, v)
		}
	}

	ps := log.all()
	if len(ps) < 2 {
		t.Fatalf("progress reported %d times: %+v", len(ps), ps)
	}
	for i, p := range ps {
		if p.Time.IsZero() || p.Desired != 4 || p.Message == "" {
			t.Errorf("progress %d = %+v, want time, message and 4 desired", i, p)
		}
		// maxUnavailable 0: never fewer than 4 ready replicas.
		if p.Ready < 4 {
			t.Errorf("progress %d = %+v: fewer than 4 ready during the rollout", i, p)
		}
		if i > 0 {
			q := ps[i-1]
			q.Time = p.Time
			if q == p {
				t.Errorf("progress %d repeats %+v", i, p)
			}
		}
	}
	if last := ps[len(ps)-1]; last.Ready != 4 || last.Updated != 4 || !strings.Contains(last.Message, "4 of 4") {
		t.Errorf("last progress = %+v, want 4 ready, 4 updated", last)
	}

	st, err := kt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Digest != next.Digest || st.Commit != next.Commit || st.Ready != 4 || st.Desired != 4 || len(st.Replicas) != 4 {
		t.Errorf("Status = %+v, want 4 ready replicas of %s", st, next.Digest)
	}

	// A release left empty removes the annotation.
	third := spec(newDigest(), 3, 4)
	third.Release = ""
	if err := kt.Apply(ctx, third, nil); err != nil {
		t.Fatalf("Apply without release: %v", err)
	}
	d, err = c.Client.AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []map[string]string{d.Annotations, d.Spec.Template.Annotations} {
		if r, ok := a[AnnotationRelease]; ok {
			t.Errorf("release annotation = %q after applying no release, want none", r)
		}
		if a[AnnotationDigest] != third.Digest {
			t.Errorf("digest annotation = %q, want %s", a[AnnotationDigest], third.Digest)
		}
	}
	if n := len(c.pods(ns)); n != 4 {
		t.Errorf("%d pods after the rollouts, want 4", n)
	}
}

func TestApplyIdempotent(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	s := spec(newDigest(), 5, 2)
	d := c.create(testDeployment(ns, s))
	kt := c.target(ns)
	ctx := context.Background()

	called := 0
	start := time.Now()
	if err := kt.Apply(ctx, s, func(ferry.Progress) { called++ }); err != nil {
		t.Fatalf("Apply(running spec): %v", err)
	}
	took := time.Since(start)
	got := c.deployment(ns)
	if got.Generation != d.Generation || got.ResourceVersion == "" {
		t.Errorf("Apply(running spec): generation %d → %d, want unchanged", d.Generation, got.Generation)
	}
	if called != 0 || took > 2*time.Second {
		t.Errorf("Apply(running spec) reported progress %d times and took %s, want none at once", called, took)
	}
	rv := got.ResourceVersion

	// Replicas 0 keeps the cluster's count: still a no-op.
	s0 := s
	s0.Replicas = 0
	if err := kt.Apply(ctx, s0, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.deployment(ns); got.ResourceVersion != rv {
		t.Errorf("Apply(running spec, 0 replicas) changed the deployment (resource version %s → %s)", rv, got.ResourceVersion)
	}

	// The same digest deployed again (another deployment id): only the
	// Deployment's annotations change; nothing restarts.
	again := s
	again.DeploymentID = 6
	pods := podNames(c.pods(ns))
	if err := kt.Apply(ctx, again, nil); err != nil {
		t.Fatal(err)
	}
	got = c.deployment(ns)
	if id := got.Annotations[AnnotationDeploymentID]; id != "6" {
		t.Errorf("deployment-id annotation = %q, want 6", id)
	}
	if id := got.Spec.Template.Annotations[AnnotationDeploymentID]; id != "5" {
		t.Errorf("template deployment-id annotation = %q, want 5 (the deployment that started the pods)", id)
	}
	rss, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 1 {
		t.Errorf("%d ReplicaSets after a redeploy of the running digest, want 1", len(rss.Items))
	}

	// A new replica count scales without a new ReplicaSet.
	more := again
	more.Replicas = 3
	if err := kt.Apply(ctx, more, nil); err != nil {
		t.Fatal(err)
	}
	got = c.deployment(ns)
	if *got.Spec.Replicas != 3 || got.Status.ReadyReplicas != 3 {
		t.Errorf("after Apply with 3 replicas: spec %d, ready %d, want 3", *got.Spec.Replicas, got.Status.ReadyReplicas)
	}
	now := podNames(c.pods(ns))
	for _, p := range pods {
		if !slices.Contains(now, p) {
			t.Errorf("pod %s replaced by a scale-up of the same digest (pods now %v)", p, now)
		}
	}
}

func (c *cluster) deployment(ns string) *appsv1.Deployment {
	c.t.Helper()
	d, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), "app", metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// TestApplyFails rolls to digests whose pods never become ready, checks
// that Apply fails in time with a clear error while the old replicas keep
// serving, then reverts.
func TestApplyFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		status         string // the new pods' status template
		progressDeadln int32
		readyTimeout   time.Duration
		slack          time.Duration
		want           []string      // in the error
		min, max       time.Duration // Apply's duration
		state          string        // the new replica's state
	}{
		{
			name: "ferry deadline", status: kubetest.NotReady, progressDeadln: 600,
			readyTimeout: time.Second, slack: 2 * time.Second,
			want: []string{"rollout of app in test: 0/2 updated replicas ready after", "not done within ferry's deadline of 4s", ": not ready"},
			min:  4 * time.Second, max: 12 * time.Second, state: "starting",
		},
		{
			name: "progress deadline", status: kubetest.NotReady, progressDeadln: 2,
			readyTimeout: time.Minute, slack: rolloutSlack,
			want: []string{"rollout of app in test: 0/2 updated replicas ready after", "progressDeadlineSeconds (2)", "has timed out progressing", ": not ready"},
			// The deployment controller keeps condition times in whole
			// seconds, so its deadline can fire up to a second early.
			min: time.Second, max: 30 * time.Second, state: "starting",
		},
		{
			name: "crash loop", status: kubetest.CrashLoop, progressDeadln: 600,
			readyTimeout: time.Minute, slack: rolloutSlack,
			want: []string{"rollout of app in test: 0/2 updated replicas ready after", ": CrashLoopBackOff (4 restarts, last exit code 1 Error)"},
			max:  15 * time.Second, state: "crash-looping",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := testCluster(t)
			ns := c.namespace()
			good := spec(newDigest(), 1, 2)
			good.Rollout.ReadyTimeout = tc.readyTimeout
			d := testDeployment(ns, good)
			d.Spec.ProgressDeadlineSeconds = &tc.progressDeadln
			c.create(d)
			bad := spec(newDigest(), 2, 2)
			bad.Rollout.ReadyTimeout = tc.readyTimeout
			c.brokenDigest(ns, bad.Digest, tc.status)
			kt := c.target(ns)
			kt.slack = tc.slack
			ctx := context.Background()
			oldPods := podNames(c.pods(ns))

			serving := c.watchServing(ns, testImage+"@"+good.Digest, 2)
			start := time.Now()
			err := kt.Apply(ctx, bad, nil)
			took := time.Since(start)
			if err == nil {
				t.Fatal("Apply of a digest that never becomes ready succeeded")
			}
			t.Logf("Apply failed after %s: %v", took, err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if took < tc.min || took > tc.max {
				t.Errorf("Apply failed after %s, want between %s and %s", took, tc.min, tc.max)
			}
			re, ok := errors.AsType[*RolloutError](err)
			if !ok {
				t.Fatalf("error is %T, want *RolloutError", err)
			}
			if re.Pod == "" || slices.Contains(oldPods, re.Pod) {
				t.Errorf("error names pod %q, want the new pod (old pods %v)", re.Pod, oldPods)
			}
			if !strings.Contains(err.Error(), "pod "+re.Pod+": ") {
				t.Errorf("error %q does not name pod %s", err, re.Pod)
			}

			st, err := kt.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Digest != "" || st.Commit != "" || st.Ready != 2 || len(st.Replicas) != 3 {
				t.Errorf("Status after the failure = %+v, want 2 ready of the old digest, 1 new, no common digest", st)
			}
			for _, r := range st.Replicas {
				switch r.Digest {
				case good.Digest:
					if !r.Ready || r.State != "running" {
						t.Errorf("old replica %+v, want ready and running", r)
					}
				case bad.Digest:
					if r.ID != re.Pod || r.Ready || r.State != tc.state {
						t.Errorf("new replica %+v, want %s, not ready, %s", r, re.Pod, tc.state)
					}
				default:
					t.Errorf("replica %+v runs neither digest", r)
				}
			}

			// The controller's revert: Apply the previous spec.
			var log progressLog
			if err := kt.Apply(ctx, good, log.add); err != nil {
				t.Fatalf("revert: %v", err)
			}
			serving.end(t)
			st, err = kt.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Digest != good.Digest || st.Commit != good.Commit || st.Ready != 2 || len(st.Replicas) != 2 {
				t.Errorf("Status after the revert = %+v, want 2 ready replicas of %s", st, good.Digest)
			}
			// The template is the old one again: Kubernetes takes the old
			// ReplicaSet back, and the old pods never stopped.
			if now := podNames(c.pods(ns)); !slices.Equal(sorted(now), sorted(oldPods)) {
				t.Errorf("pods after the revert %v, want the old ones %v", now, oldPods)
			}
			if ps := log.all(); len(ps) == 0 || ps[len(ps)-1].Ready != 2 || ps[len(ps)-1].Updated != 2 {
				t.Errorf("revert progress = %+v, want it to end with 2 ready, 2 updated", ps)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestStatus(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	s := spec(newDigest(), 9, 3)
	c.create(testDeployment(ns, s))
	kt := c.target(ns)
	ctx := context.Background()

	st, err := kt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pods := c.pods(ns)
	if st.Digest != s.Digest || st.Commit != s.Commit || st.Ready != 3 || st.Desired != 3 || len(st.Replicas) != 3 {
		t.Fatalf("Status = %+v, want 3 ready replicas of %s at %s", st, s.Digest, s.Commit)
	}
	for _, r := range st.Replicas {
		i := slices.IndexFunc(pods, func(p corev1.Pod) bool { return p.Name == r.ID })
		if i < 0 {
			t.Errorf("replica %s is no pod of the deployment (%v)", r.ID, podNames(pods))
			continue
		}
		p := pods[i]
		if r.Digest != s.Digest || !r.Ready || r.State != "running" || r.Restarts != 0 || r.Started.IsZero() ||
			r.Addr != p.Status.PodIP+":8080" {
			t.Errorf("replica = %+v, want ready, running, %s, started, at %s:8080", r, s.Digest, p.Status.PodIP)
		}
	}

	// The commit is the Deployment's only while its digest annotation
	// names what runs.
	patch := []byte(`{"metadata":{"annotations":{"ferry.dev/digest":"sha256:` + strings.Repeat("0", 64) + `"}}}`)
	if _, err := c.Client.AppsV1().Deployments(ns).Patch(ctx, "app", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, err := kt.Status(ctx); err != nil || st.Digest != s.Digest || st.Commit != "" {
		t.Errorf("Status with another digest annotated = %+v, %v; want digest %s, no commit", st, err, s.Digest)
	}

	// Pods of another owner matching the selector are not the Deployment's.
	stray := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: ns, Labels: map[string]string{"app": "app"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: testImage + "@" + newDigest()}}},
	}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, err := kt.Status(ctx); err != nil || len(st.Replicas) != 3 || st.Digest != s.Digest {
		t.Errorf("Status with a stray pod = %+v, %v; want the 3 replicas of %s", st, err, s.Digest)
	}
}

func TestScale(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	s := spec(newDigest(), 1, 2)
	c.create(testDeployment(ns, s))
	kt := c.target(ns)
	ctx := context.Background()

	for _, n := range []int{4, 1} {
		if err := kt.Scale(ctx, n); err != nil {
			t.Fatalf("Scale(%d): %v", n, err)
		}
		d := c.deployment(ns)
		if int(*d.Spec.Replicas) != n || int(d.Status.ReadyReplicas) != n {
			t.Errorf("after Scale(%d): spec %d replicas, %d ready", n, *d.Spec.Replicas, d.Status.ReadyReplicas)
		}
		st, err := kt.Status(ctx)
		if err != nil || st.Ready != n || st.Desired != n || st.Digest != s.Digest {
			t.Errorf("Status after Scale(%d) = %+v, %v", n, st, err)
		}
	}
	if err := kt.Scale(ctx, -1); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("Scale(-1) = %v, want %s", err, ferry.EINVALID)
	}
}

func TestScaleHPA(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	s := spec(newDigest(), 1, 2)
	c.create(testDeployment(ns, s))
	ctx := context.Background()
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "app"},
			MinReplicas:    new(int32(2)),
			MaxReplicas:    3,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: new(int32(80))},
				},
			}},
		},
	}
	if _, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kt := c.target(ns, func(cfg *Config) { cfg.HPA = "app" })

	for _, tc := range []struct{ n, min, max int32 }{
		{5, 5, 5}, // max raised to the new minimum
		{2, 2, 5}, // max never lowered
	} {
		if err := kt.Scale(ctx, int(tc.n)); err != nil {
			t.Fatalf("Scale(%d): %v", tc.n, err)
		}
		h, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *h.Spec.MinReplicas != tc.min || h.Spec.MaxReplicas != tc.max {
			t.Errorf("after Scale(%d): HPA bounds %d..%d, want %d..%d", tc.n, *h.Spec.MinReplicas, h.Spec.MaxReplicas, tc.min, tc.max)
		}
	}
	if err := kt.Scale(ctx, 0); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("Scale(0) with an HPA = %v, want %s", err, ferry.EINVALID)
	}

	// With an HPA, Apply leaves the replica count to it.
	next := spec(newDigest(), 2, 7)
	if err := kt.Apply(ctx, next, nil); err != nil {
		t.Fatal(err)
	}
	// The autoscaler may move the count at any moment, so the count alone
	// proves little: the API server's record of who set which field does.
	if d := c.deployment(ns); *d.Spec.Replicas == 7 || managesReplicas(t, d, "ferry") {
		t.Errorf("Apply with an HPA set the deployment's replicas (now %d)", *d.Spec.Replicas)
	}

	missing := c.target(ns, func(cfg *Config) { cfg.HPA = "nope" })
	err := missing.Scale(ctx, 3)
	if ferry.ErrorCode(err) != ferry.ENOTFOUND || !strings.Contains(err.Error(), "horizontalpodautoscaler nope not found in namespace "+ns) {
		t.Errorf("Scale with a missing HPA = %v, want not found naming it and %s", err, ns)
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	c.create(testDeployment(ns, spec(newDigest(), 1, 1)))
	kt := c.target(ns)
	pod := c.pods(ns)[0].Name

	for _, follow := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var out bytes.Buffer
		start := time.Now()
		err := kt.Logs(ctx, &out, 10, follow)
		cancel()
		// kwok runs no kubelet: the API server cannot reach one.
		if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "the cluster did not serve logs for pod "+pod+": ") {
			t.Errorf("Logs(follow %v) = %v, want unavailable naming pod %s", follow, err, pod)
		}
		if took := time.Since(start); took > logConnect+5*time.Second {
			t.Errorf("Logs(follow %v) took %s", follow, took)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	ctx := context.Background()
	s := spec(newDigest(), 1, 1)

	// No Deployment.
	kt := c.target(ns)
	want := "deployment app not found in namespace " + ns
	calls := map[string]func() error{
		"Apply":  func() error { return kt.Apply(ctx, s, nil) },
		"Status": func() error { _, err := kt.Status(ctx); return err },
		"Scale":  func() error { return kt.Scale(ctx, 2) },
		"Logs":   func() error { return kt.Logs(ctx, &bytes.Buffer{}, 1, false) },
	}
	for name, call := range calls {
		if err := call(); ferry.ErrorCode(err) != ferry.ENOTFOUND || !strings.Contains(err.Error(), want) {
			t.Errorf("%s without deployment = %v, want %s: …%s…", name, err, ferry.ENOTFOUND, want)
		}
	}

	// Two containers, none named; a named one that is missing.
	d := testDeployment(ns, s)
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "proxy", Image: "registry.test/proxy:1"})
	c.create(d)
	for _, tc := range []struct {
		container, code, want string
	}{
		{"", ferry.EINVALID, "deployment app in namespace " + ns + " has 2 containers (app, proxy): name the one ferry sets"},
		{"web", ferry.ENOTFOUND, `deployment app in namespace ` + ns + ` has no container "web" (it has app, proxy)`},
	} {
		kt := c.target(ns, func(cfg *Config) { cfg.Container = tc.container })
		err := kt.Apply(ctx, s, nil)
		if ferry.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Apply with container %q = %v, want %s: %s", tc.container, err, tc.code, tc.want)
		}
		if _, err := kt.Status(ctx); ferry.ErrorCode(err) != tc.code {
			t.Errorf("Status with container %q = %v, want %s", tc.container, err, tc.code)
		}
	}
	// Named, the other container is left alone.
	named := c.target(ns, func(cfg *Config) { cfg.Container = "app" })
	next := spec(newDigest(), 2, 1)
	if err := named.Apply(ctx, next, nil); err != nil {
		t.Fatal(err)
	}
	cs := c.deployment(ns).Spec.Template.Spec.Containers
	if len(cs) != 2 || cs[0].Image != testImage+"@"+next.Digest || cs[1].Image != "registry.test/proxy:1" {
		t.Errorf("containers after Apply = %+v", cs)
	}

	// Bad specs lose nothing.
	for _, bad := range []ferry.Spec{
		{Env: "test", Image: testImage, Digest: "latest"},
		{Env: "test", Image: testImage + "@sha256:" + strings.Repeat("a", 64), Digest: s.Digest},
		{Env: "test", Image: testImage, Digest: s.Digest, Replicas: -1},
		{Env: "prod", Image: testImage, Digest: s.Digest},
	} {
		if err := named.Apply(ctx, bad, nil); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("Apply(%+v) = %v, want %s", bad, err, ferry.EINVALID)
		}
	}
	if got := c.deployment(ns).Spec.Template.Spec.Containers[0].Image; got != testImage+"@"+next.Digest {
		t.Errorf("image after bad specs = %s", got)
	}

	// Forbidden: a user without any role.
	rc := rest.CopyConfig(c.Config)
	rc.Impersonate = rest.ImpersonationConfig{UserName: "ferry-test-nobody"}
	kn, err := NewForConfig(Config{Env: "test", Namespace: ns, Deployment: "app"}, rc)
	if err != nil {
		t.Fatal(err)
	}
	err = kn.Apply(ctx, next, nil)
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "kubernetes does not let ferry get deployment app in namespace "+ns) ||
		!strings.Contains(err.Error(), "forbidden") {
		t.Errorf("Apply as a user without rights = %v, want unavailable: forbidden, naming the namespace", err)
	}

	// Closed.
	named.Close(ctx)
	named.Close(ctx)
	if err := named.Apply(ctx, next, nil); ferry.ErrorCode(err) != ferry.EUNAVAILABLE {
		t.Errorf("Apply after Close = %v, want %s", err, ferry.EUNAVAILABLE)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	s := spec(newDigest(), 1, 1)
	c.create(testDeployment(ns, s))
	ctx := context.Background()

	kt, err := New(Config{Env: "test", Namespace: ns, Deployment: "app", Kubeconfig: c.Kubeconfig, Context: "test"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := kt.Status(ctx)
	if err != nil || st.Digest != s.Digest || st.Ready != 1 {
		t.Errorf("Status through New = %+v, %v", st, err)
	}
	if err := kt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := kt.Status(ctx); ferry.ErrorCode(err) != ferry.EUNAVAILABLE {
		t.Errorf("Status after Close = %v, want %s", err, ferry.EUNAVAILABLE)
	}

	for _, cfg := range []Config{
		{Env: "test", Namespace: ns, Deployment: "app", Kubeconfig: c.Kubeconfig, Context: "nope"},
		{Env: "test", Namespace: ns, Deployment: "app", Kubeconfig: t.TempDir() + "/missing"},
		{Env: "test", Deployment: "app", Kubeconfig: c.Kubeconfig},
	} {
		if _, err := New(cfg); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("New(%+v) = %v, want %s", cfg, err, ferry.EINVALID)
		}
	}
}

// managesReplicas reports whether field manager owns d's spec.replicas,
// by the API server's managed-fields record.
func managesReplicas(t *testing.T, d *appsv1.Deployment, manager string) bool {
	t.Helper()
	for _, mf := range d.ManagedFields {
		if mf.Manager != manager || mf.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Spec map[string]json.RawMessage `json:"f:spec"`
		}
		if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
			t.Fatalf("managed fields of %s: %v", manager, err)
		}
		if _, ok := fields.Spec["f:replicas"]; ok {
			return true
		}
	}
	return false
}
