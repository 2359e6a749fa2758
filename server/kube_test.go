package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/kubetest"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/runtime/kube"
)

// cluster is the test's handle on the real control plane
// (FERRY_TEST_KUBECONFIG, started by scripts/k8s-harness).
type cluster struct {
	*kubetest.Cluster
	t testing.TB
}

// newCluster connects to the control plane; the test fails when
// FERRY_TEST_REQUIRE names kubernetes and it is missing, and skips
// otherwise.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	return &cluster{Cluster: kubetest.Connect(t), t: t}
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
					MaxUnavailable: new(intstr.FromInt32(0)), MaxSurge: new(intstr.FromInt32(1)),
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
	if _, err := c.Client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// image is the Deployment's container image and pod-template commit
// annotation.
func (c *cluster) image(ns, name string) (image, commit string) {
	c.t.Helper()
	d, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image, d.Spec.Template.Annotations[kube.AnnotationCommit]
}

// readyOn counts the Deployment's pods that are Ready, on image and not.
func (c *cluster) readyOn(ns, name, image string) (on, other int) {
	c.t.Helper()
	pods, err := c.ReadyPods(context.Background(), ns, "app="+name)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range pods {
		if p.Spec.Containers[0].Image == image {
			on++
		} else {
			other++
		}
	}
	return on, other
}

// fewestReady stops w and returns the fewest ready pods it saw; a watch
// that made no check fails the test.
func fewestReady(t testing.TB, w *kubetest.ReadyWatch) int {
	t.Helper()
	counts := w.Stop()
	if len(counts) == 0 {
		t.Fatal("the watch of ready pods made no check")
	}
	least := counts[0].Ready
	for _, c := range counts {
		least = min(least, c.Ready)
	}
	return least
}

// TestKubernetesEndToEnd drives dev and prod as two namespaces of a real
// control plane: a master push rolls dev's Deployment to the new digest, a
// promotion rolls prod, a rollback restores the previous release, and a
// build whose pods never become ready is reverted while the old pods keep
// serving.
func TestKubernetesEndToEnd(t *testing.T) {
	k := newCluster(t)
	kubeconfig := k.Kubeconfig
	devNS, prodNS := k.Namespace("ferry-e2e-dev"), k.Namespace("ferry-e2e-prod")
	k.deployment(devNS, "tiny", 2)
	k.deployment(prodNS, "tiny", 4)

	repo := newRepo(t, "testdata/tiny")
	onKube := func(ns string) string {
		return fmt.Sprintf("runtime: { kubernetes: { namespace: %s, deployment: tiny, container: app, kubeconfig: %s } }", ns, kubeconfig)
	}
	yaml := strings.Replace(tinyConfig(repo.Dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }",
		onKube(devNS)+"\n  prod:\n    branch: release\n    from: dev\n    tags: [live]\n    "+onKube(prodNS), 1)
	s := start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
	c := newClient(t, s)
	ctx := context.Background()
	repository := s.ImageRepository()

	// deployed triggers a build of master's head and waits until dev runs it.
	deployed := func(subject string) (commit, image string) {
		t.Helper()
		repo.Write("release.txt", subject+"\n")
		commit = repo.CommitAll(subject)
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
		waitFinished(t, c, deploymentOf(t, c, d))
		wantRunning(prodNS, rel.image, rel.commit, 4)
	}
	wantStatus(t, c, "prod", b, imageB, 4)

	// A rollback restores A without a build.
	d, err := c.Rollback(ctx, "prod", "", "e2e: roll back")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitFinished(t, c, deploymentOf(t, c, d)); got.Kind != ferry.DeployRollback || got.Commit != a {
		t.Fatalf("rollback = %s of %s, want a rollback to %s", got.Kind, ferry.ShortSHA(got.Commit), ferry.ShortSHA(a))
	}
	wantRunning(prodNS, imageA, a, 4)

	// A build whose pods never become ready is reverted; B's pods serve
	// throughout (maxUnavailable 0).
	repo.Write("release.txt", "broken\n")
	broken := repo.CommitAll("broken: crashes on start")
	// kwok holds its pods in CrashLoopBackOff: a binary that crashes on
	// start.
	k.Stage(devNS, kube.AnnotationCommit, broken, kubetest.CrashLoop)
	watch := k.WatchReady(devNS, "app=tiny", "")
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
	if got := fewestReady(t, watch); got < 2 {
		t.Errorf("dev fell to %d ready pods during the failed rollout and its revert, want never below 2", got)
	}
	wantStatus(t, c, "dev", b, imageB, 2)

	// ferry scale sets the Deployment's replicas, on the running digest,
	// and the next rollout keeps the new count.
	sd, err := c.Scale(ctx, "prod", 6, "e2e: more")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitFinished(t, c, deploymentOf(t, c, sd)); got.Kind != ferry.DeployScale || got.Replicas != 6 {
		t.Fatalf("scale = %s to %d replicas, want scale to 6", got.Kind, got.Replicas)
	}
	wantRunning(prodNS, imageA, a, 6)
	d, err = c.Promote(ctx, "prod", b, "e2e: release B again")
	if err != nil {
		t.Fatal(err)
	}
	waitFinished(t, c, deploymentOf(t, c, d))
	wantRunning(prodNS, imageB, b, 6)
	wantStatus(t, c, "prod", b, imageB, 6)
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
// as failed, dev is restored to the last succeeded digest, the new digest
// is tried once more (its rollout was interrupted, not failed) and
// reverted when it still never gets ready, and dev's ready pods never
// drop below the desired count.
func TestKubernetesRestartMidRollout(t *testing.T) {
	k := newCluster(t)
	kubeconfig := k.Kubeconfig
	devNS := k.Namespace("ferry-e2e-restart")
	k.deployment(devNS, "tiny", 2)
	repo := newRepo(t, "testdata/tiny")
	yaml := strings.Replace(tinyConfig(repo.Dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }",
		fmt.Sprintf("runtime: { kubernetes: { namespace: %s, deployment: tiny, container: app, kubeconfig: %s } }\n    rollout: { readyTimeout: 5m }", devNS, kubeconfig), 1)
	// The second server must find the same registry: fix its port.
	yaml = strings.Replace(yaml, "registry: { listen: 127.0.0.1:0 }", "registry: { listen: "+testport.Addr(t)+" }", 1)
	ctx := context.Background()

	first := start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
	c := newClient(t, first)
	repository := first.ImageRepository()
	a := repo.CommitAll("release A")
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		t.Fatal(err)
	}
	bA := waitBuild(t, first, a, 5*time.Minute)
	waitDeployed(t, c, "dev", a)
	imageA := repository + "@" + bA.Digest

	repo.Write("release.txt", "B\n")
	b := repo.CommitAll("release B: never ready")
	// kwok keeps its pods running but never ready.
	k.Stage(devNS, kube.AnnotationCommit, b, kubetest.NotReady)
	watch := k.WatchReady(devNS, "app=tiny", "")
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

	// B's rollout was interrupted, not failed: the restarted ferry tries
	// it again (dev converges on master). B is still never ready, so that
	// try fails — sooner, with a short ready timeout — and is reverted.
	second := start(t, strings.Replace(yaml, "readyTimeout: 5m", "readyTimeout: 5s", 1), Options{KubePoll: 100 * time.Millisecond})
	c = newClient(t, second)
	var retry *ferry.Deployment
	waitFor(t, 3*time.Minute, "dev's retry of B to be rolled back", func() bool {
		ds, err := c.Deployments(ctx, "dev", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Commit == b && d.ID > rolling.ID && d.State.Final() {
				retry = d
			}
		}
		return retry != nil
	})
	if retry.State != ferry.DeploymentRolledBack || retry.Actor != "ferry" {
		t.Errorf("dev's retry of B = %s by %s (%s), want rolled-back, by ferry", retry.State, retry.Actor, retry.Error)
	}
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
	if got := fewestReady(t, watch); got < 2 {
		t.Errorf("dev fell to %d ready pods across the restart, want never below 2", got)
	}
}
