package kube

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/kubetest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// testImage is the repository of the test Deployments' image; kwok runs
// no containers, so nothing is pulled.
const testImage = "registry.test/birthday-app"

// cluster is a test's handle on the real control plane that
// FERRY_TEST_KUBECONFIG points at, with this package's helpers.
type cluster struct {
	*kubetest.Cluster
	t testing.TB
}

// testCluster connects to the control plane; it fails the test when
// FERRY_TEST_REQUIRE names kubernetes and the cluster is missing or
// unreachable, and skips it otherwise.
func testCluster(t testing.TB) *cluster {
	t.Helper()
	return &cluster{Cluster: kubetest.Connect(t), t: t}
}

// randHex is n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newDigest is a fresh digest, for an image that exists nowhere.
func newDigest() string {
	sum := sha256.Sum256([]byte(randHex(16)))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// namespace creates a namespace named after the test, deleted when the
// test ends.
func (c *cluster) namespace() string {
	c.t.Helper()
	return c.Namespace(c.t.Name())
}

// spec is a spec of the test image at digest, as ferry would apply it.
func spec(digest string, id int64, replicas int) ferry.Spec {
	return ferry.Spec{
		Env: "test", Image: testImage, Digest: digest, Replicas: replicas,
		Commit: strings.Repeat(digest[7:8], 40), Release: "v" + digest[7:11], DeploymentID: id,
		Rollout: ferry.Rollout{MaxSurge: 1, ReadyTimeout: 30 * time.Second},
	}
}

// testDeployment is a Deployment "app" with one container "app" running
// s, ferry's annotations on it and its template as a former Apply of s
// leaves them, rolling one replica at a time without going below the desired
// count.
func testDeployment(ns string, s ferry.Spec) *appsv1.Deployment {
	labels := map[string]string{"app": "app"}
	replicas := int32(s.Replicas)
	tmpl := map[string]string{}
	for k, v := range annotations(s) {
		if v != nil {
			tmpl[k] = *v
		}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns, Annotations: maps.Clone(tmpl)},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: new(intstr.FromInt32(0)),
					MaxSurge:       new(intstr.FromInt32(1)),
				},
			},
			ProgressDeadlineSeconds: new(int32(600)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: tmpl},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "app", Image: s.Image + "@" + s.Digest,
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
					}},
					TerminationGracePeriodSeconds: new(int64(1)),
				},
			},
		},
	}
}

// create creates d and waits until all its replicas are ready.
func (c *cluster) create(d *appsv1.Deployment) *appsv1.Deployment {
	c.t.Helper()
	ctx := context.Background()
	d, err := c.Client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.waitReady(d.Namespace, d.Name, int(*d.Spec.Replicas))
	return d
}

// waitReady waits until the Deployment has n updated, ready replicas and
// no other.
func (c *cluster) waitReady(ns, name string, n int) {
	c.t.Helper()
	c.eventually(60*time.Second, func() (bool, string) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s := d.Status
		return s.ObservedGeneration >= d.Generation && int(s.UpdatedReplicas) == n && int(s.ReadyReplicas) == n &&
				int(s.AvailableReplicas) == n && int(s.Replicas) == n,
			fmt.Sprintf("deployment %s/%s status %+v", ns, name, s)
	})
}

// eventually polls cond until it holds, failing the test with cond's last
// words after timeout.
func (c *cluster) eventually(timeout time.Duration, cond func() (bool, string)) {
	c.t.Helper()
	end := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			c.t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// target is a Runtime for the Deployment "app" in ns.
func (c *cluster) target(ns string, mod ...func(*Config)) *Runtime {
	c.t.Helper()
	cfg := Config{
		Env: "test", Namespace: ns, Deployment: "app",
		Logger: slog.New(slog.NewTextHandler(testWriter{c.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Poll:   200 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	t, err := NewForConfig(cfg, c.Config)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { t.Close(context.Background()) })
	return t
}

// testWriter sends log output to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// brokenDigest makes every pod whose template carries ferry's digest
// annotation digest take the pod status given (kubetest.NotReady,
// kubetest.CrashLoop) instead of becoming ready, until the test ends.
func (c *cluster) brokenDigest(ns, digest, status string) {
	c.t.Helper()
	c.Stage(ns, AnnotationDigest, digest, status)
}

// pods lists the pods in ns, terminating ones left out.
func (c *cluster) pods(ns string) []corev1.Pod {
	c.t.Helper()
	list, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=app"})
	if err != nil {
		c.t.Fatal(err)
	}
	return slices.DeleteFunc(list.Items, func(p corev1.Pod) bool { return p.DeletionTimestamp != nil })
}

// servingWatch checks, every 20 ms until ended, that at least n pods of
// the Deployment in ns run image (any image when "") and are ready: the
// environment serves.
type servingWatch struct {
	w *kubetest.ReadyWatch
	n int
}

func (c *cluster) watchServing(ns, image string, n int) *servingWatch {
	return &servingWatch{w: c.WatchReady(ns, "app=app", image), n: n}
}

// end stops the watch and fails the test if fewer than n pods served at
// any check.
func (w *servingWatch) end(t testing.TB) {
	t.Helper()
	counts := w.w.Stop()
	if len(counts) == 0 {
		t.Fatal("serving watch made no check")
	}
	var low []string
	for _, c := range counts {
		if c.Ready < w.n {
			low = append(low, fmt.Sprintf("%s: %d ready", c.At.Format("15:04:05.000"), c.Ready))
		}
	}
	if len(low) > 0 {
		t.Errorf("old replicas stopped serving (%d of %d checks): %s", len(low), len(counts), strings.Join(low[:min(5, len(low))], "; "))
	}
}
