package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/client"
)

// kubeconfigForTest is the real control plane's admin kubeconfig
// (FERRY_TEST_KUBECONFIG, started by scripts/k8s-harness); the test fails
// when FERRY_TEST_REQUIRE names kubernetes and it is missing, and skips
// otherwise.
func kubeconfigForTest(t testing.TB) string {
	t.Helper()
	path := os.Getenv("FERRY_TEST_KUBECONFIG")
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	msg := "no Kubernetes control plane: set FERRY_TEST_KUBECONFIG (scripts/k8s-harness up prints it)"
	if slices.Contains(strings.Split(os.Getenv("FERRY_TEST_REQUIRE"), ","), "kubernetes") {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// cluster is the test's handle on the real API server.
type cluster struct {
	t   testing.TB
	cs  kubernetes.Interface
	dyn dynamic.Interface
}

func newCluster(t testing.TB, kubeconfig string) *cluster {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, cs: cs, dyn: dyn}
}

// namespace creates a uniquely named namespace, deleted at the end.
func (c *cluster) namespace(prefix string) string {
	c.t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := prefix + "-" + hex.EncodeToString(b[:])
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		c.cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// deployment creates the Deployment a user's manifests would: ferry only
// sets its image. It starts on a placeholder image that kwok "runs".
func (c *cluster) deployment(ns, name string, replicas int32) {
	c.t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr(intstr.FromInt32(0)), MaxSurge: ptr(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.invalid/placeholder:unset",
				}}},
			},
		},
	}
	if _, err := c.cs.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// image is the Deployment's container image and pod-template commit
// annotation.
func (c *cluster) image(ns, name string) (image, commit string) {
	c.t.Helper()
	d, err := c.cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image, d.Spec.Template.Annotations["ferry.dev/commit"]
}

// readyOn counts the Deployment's pods that are Ready, on image and not.
func (c *cluster) readyOn(ns, name, image string) (on, other int) {
	c.t.Helper()
	pods, err := c.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || !podReady(&p) {
			continue
		}
		if p.Spec.Containers[0].Image == image {
			on++
		} else {
			other++
		}
	}
	return on, other
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// neverReady makes kwok hold every pod of commit in CrashLoopBackOff: the
// stand-in for a build whose binary crashes on start. A Stage with weight
// wins over the harness's default ones, which have none.
func (c *cluster) neverReady(commit string) { c.podsOf(commit, crashLoopStatus) }

// podsOf makes kwok give every new pod of commit the status template
// status instead of the defaults' Ready.
func (c *cluster) podsOf(commit, status string) {
	c.t.Helper()
	name := "ferry-e2e-pods-of-" + commit[:12]
	stage := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Stage",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"resourceRef": map[string]any{"apiGroup": "v1", "kind": "Pod"},
			"weight":      int64(1),
			"selector": map[string]any{"matchExpressions": []any{
				map[string]any{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
				map[string]any{"key": ".status.phase", "operator": "In", "values": []any{"Pending"}},
				map[string]any{"key": `.metadata.annotations["ferry.dev/commit"]`, "operator": "In", "values": []any{commit}},
			}},
			"next": map[string]any{"statusTemplate": status},
		},
	}}
	res := c.dyn.Resource(schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "stages"})
	if _, err := res.Create(context.Background(), stage, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("create kwok stage: %v", err)
	}
	c.t.Cleanup(func() { res.Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

const crashLoopStatus = `{{ $now := Now }}
conditions:
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: Initialized}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: Ready, reason: ContainersNotReady}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: ContainersReady, reason: ContainersNotReady}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: false
  restartCount: 5
  state:
    waiting: {reason: CrashLoopBackOff, message: "back-off 40s restarting failed container"}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace | Quote }}
phase: Running
startTime: {{ $now | Quote }}
`

// notReadyStatus is a pod that runs but never passes its readiness probe:
// no restarts, so nothing ends the rollout early.
const notReadyStatus = `{{ $now := Now }}
conditions:
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: Initialized}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: Ready, reason: ContainersNotReady}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: ContainersReady, reason: ContainersNotReady}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: true
  restartCount: 0
  state:
    running: {startedAt: {{ $now | Quote }}}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace | Quote }}
phase: Running
startTime: {{ $now | Quote }}
`

func ptr[T any](v T) *T { return &v }

// TestKubernetesEndToEnd drives dev and prod as two namespaces of a real
// control plane: a master push rolls dev's Deployment to the new digest, a
// promotion rolls prod, a rollback restores the previous release, and a
// build whose pods never become ready is reverted while the old pods keep
// serving.
func TestKubernetesEndToEnd(t *testing.T) {
	kubeconfig := kubeconfigForTest(t)
	k := newCluster(t, kubeconfig)
	devNS, prodNS := k.namespace("ferry-e2e-dev"), k.namespace("ferry-e2e-prod")
	k.deployment(devNS, "tiny", 2)
	k.deployment(prodNS, "tiny", 4)

	repo := newGitRepo(t, "testdata/tiny")
	onKube := func(ns string) string {
		return fmt.Sprintf("runtime: { kubernetes: { namespace: %s, deployment: tiny, container: app, kubeconfig: %s } }", ns, kubeconfig)
	}
	yaml := strings.Replace(tinyConfig(repo.dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }",
		onKube(devNS)+"\n  prod:\n    branch: release\n    from: dev\n    tags: [live]\n    "+onKube(prodNS), 1)
	s := start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
	c := newClient(t, s)
	ctx := context.Background()
	repository := s.ImageRepository()

	// deployed triggers a build of master's head and waits until dev runs it.
	deployed := func(subject string) (commit, image string) {
		t.Helper()
		repo.write("release.txt", subject+"\n")
		commit = repo.commit(subject)
		if _, err := c.Trigger(ctx, "master", ""); err != nil {
			t.Fatal(err)
		}
		b := waitBuild(t, s, commit, 5*time.Minute)
		if b.State != ferry.BuildSucceeded {
			t.Fatalf("build of %s = %s", ferry.ShortSHA(commit), b.State)
		}
		waitDeployed(t, c, "dev", commit)
		return commit, repository + "@" + b.Digest
	}
	wantRunning := func(ns, image, commit string, replicas int) {
		t.Helper()
		if got, gotCommit := k.image(ns, "tiny"); got != image || gotCommit != commit {
			t.Fatalf("%s Deployment runs %s (commit %q), want %s (commit %s)", ns, got, gotCommit, image, commit)
		}
		waitFor(t, 30*time.Second, fmt.Sprintf("%d ready pods on %s in %s", replicas, image, ns), func() bool {
			on, other := k.readyOn(ns, "tiny", image)
			return on == replicas && other == 0
		})
	}

	// A master push rolls dev.
	a, imageA := deployed("release A")
	wantRunning(devNS, imageA, a, 2)
	b, imageB := deployed("release B")
	wantRunning(devNS, imageB, b, 2)

	// Promotions roll prod: A first, then B.
	for _, rel := range []struct{ commit, image string }{{a, imageA}, {b, imageB}} {
		d, err := c.Promote(ctx, "prod", rel.commit, "e2e: release")
		if err != nil {
			t.Fatalf("promote %s: %v", ferry.ShortSHA(rel.commit), err)
		}
		waitFinished(t, c, d.ID)
		wantRunning(prodNS, rel.image, rel.commit, 4)
	}
	wantStatus(t, c, "prod", b, imageB, 4)

	// A rollback restores A without a build.
	d, err := c.Rollback(ctx, "prod", "", "e2e: roll back")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitFinished(t, c, d.ID); got.Kind != ferry.DeployRollback || got.Commit != a {
		t.Fatalf("rollback = %s of %s, want a rollback to %s", got.Kind, ferry.ShortSHA(got.Commit), ferry.ShortSHA(a))
	}
	wantRunning(prodNS, imageA, a, 4)

	// A build whose pods never become ready is reverted; B's pods serve
	// throughout (maxUnavailable 0).
	repo.write("release.txt", "broken\n")
	broken := repo.commit("broken: crashes on start")
	k.neverReady(broken)
	watchCtx, stopWatch := context.WithCancel(ctx)
	minReady := make(chan int, 1)
	go func() { minReady <- k.minReady(watchCtx, devNS, "tiny") }()
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		t.Fatal(err)
	}
	if bd := waitBuild(t, s, broken, 5*time.Minute); bd.State != ferry.BuildSucceeded {
		t.Fatalf("build of the broken commit = %s, want succeeded (its tests pass; it only crashes in the cluster)", bd.State)
	}
	failed := waitDeploymentOf(t, c, "dev", broken)
	if failed.State == ferry.DeploymentSucceeded || !strings.Contains(failed.Error, "CrashLoopBackOff") {
		t.Fatalf("deployment of the broken commit = %s (%q), want it failed naming CrashLoopBackOff", failed.State, failed.Error)
	}
	wantRunning(devNS, imageB, b, 2)
	stopWatch()
	if got := <-minReady; got < 2 {
		t.Errorf("dev fell to %d ready pods during the failed rollout and its revert, want never below 2", got)
	}
	wantStatus(t, c, "dev", b, imageB, 2)
}

// minReady watches the Deployment's ready pods until ctx ends and returns
// the fewest seen.
func (c *cluster) minReady(ctx context.Context, ns, name string) int {
	least := 1 << 30
	for ctx.Err() == nil {
		pods, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err == nil {
			n := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && podReady(&p) {
					n++
				}
			}
			least = min(least, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return least
}

// waitDeploymentOf waits until env's deployment of commit ends.
func waitDeploymentOf(t testing.TB, c *client.Client, env, commit string) *ferry.Deployment {
	t.Helper()
	var found *ferry.Deployment
	waitFor(t, 2*time.Minute, fmt.Sprintf("the end of %s's deployment of %s", env, ferry.ShortSHA(commit)), func() bool {
		ds, err := c.Deployments(context.Background(), env, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Commit == commit && d.Kind != ferry.DeployRollback && d.State.Final() {
				found = d
				return true
			}
		}
		return false
	})
	return found
}

// wantStatus checks ferry's own view of env against what the cluster runs.
func wantStatus(t testing.TB, c *client.Client, env, commit, image string, replicas int) {
	t.Helper()
	digest := image[strings.LastIndex(image, "@")+1:]
	waitFor(t, 30*time.Second, fmt.Sprintf("ferry status of %s on %s", env, ferry.ShortSHA(commit)), func() bool {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range st.Environments {
			if e.Name != env {
				continue
			}
			ready := 0
			for _, p := range e.Pods {
				if p.Ready && p.Digest == digest {
					ready++
				}
			}
			return e.Commit == commit && ready == replicas && e.Replicas.Desired == replicas
		}
		return false
	})
}

// TestKubernetesRestartMidRollout stops ferry while dev's Deployment is
// half-way to a new digest (its pods run but never become ready) and
// starts it again on the same ledger: the interrupted deployment is closed
// as failed, dev is restored to the last succeeded digest, and its ready
// pods never drop below the desired count.
func TestKubernetesRestartMidRollout(t *testing.T) {
	kubeconfig := kubeconfigForTest(t)
	k := newCluster(t, kubeconfig)
	devNS := k.namespace("ferry-e2e-restart")
	k.deployment(devNS, "tiny", 2)
	repo := newGitRepo(t, "testdata/tiny")
	yaml := strings.Replace(tinyConfig(repo.dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }",
		fmt.Sprintf("runtime: { kubernetes: { namespace: %s, deployment: tiny, container: app, kubeconfig: %s } }\n    rollout: { readyTimeout: 5m }", devNS, kubeconfig), 1)
	// The second server must find the same registry: fix its port.
	yaml = strings.Replace(yaml, "registry: { listen: 127.0.0.1:0 }", "registry: { listen: "+freeAddr(t)+" }", 1)
	ctx := context.Background()

	first := start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
	c := newClient(t, first)
	repository := first.ImageRepository()
	a := repo.commit("release A")
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		t.Fatal(err)
	}
	bA := waitBuild(t, first, a, 5*time.Minute)
	waitDeployed(t, c, "dev", a)
	imageA := repository + "@" + bA.Digest

	repo.write("release.txt", "B\n")
	b := repo.commit("release B: never ready")
	k.podsOf(b, notReadyStatus)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	minReady := make(chan int, 1)
	go func() { minReady <- k.minReady(watchCtx, devNS, "tiny") }()
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		t.Fatal(err)
	}
	waitBuild(t, first, b, 5*time.Minute)
	var rolling *ferry.Deployment
	waitFor(t, time.Minute, "dev's rollout of B to reach the cluster", func() bool {
		ds, err := c.Deployments(ctx, "dev", 1)
		if err != nil || len(ds) == 0 || ds[0].Commit != b || ds[0].State != ferry.DeploymentRolling {
			return false
		}
		rolling = ds[0]
		_, commit := k.image(devNS, "tiny")
		return commit == b
	})
	if err := first.Close(); err != nil {
		t.Fatalf("stop ferry mid-rollout: %v", err)
	}

	second := start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
	c = newClient(t, second)
	wantRunning := func() bool {
		image, commit := k.image(devNS, "tiny")
		on, other := k.readyOn(devNS, "tiny", imageA)
		return image == imageA && commit == a && on == 2 && other == 0
	}
	waitFor(t, time.Minute, "dev restored to A", wantRunning)
	d, err := c.Deployment(ctx, rolling.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != ferry.DeploymentFailed || !strings.Contains(d.Error, "ferry stopped during the rollout") {
		t.Errorf("interrupted deployment = %s (%q), want failed: ferry stopped during the rollout", d.State, d.Error)
	}
	wantStatus(t, c, "dev", a, imageA, 2)
	stopWatch()
	if got := <-minReady; got < 2 {
		t.Errorf("dev fell to %d ready pods across the restart, want never below 2", got)
	}
}
