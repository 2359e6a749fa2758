package kube

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/controller"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// testImage is the repository of the test Deployments' image; kwok runs
// no containers, so nothing is pulled.
const testImage = "registry.test/birthday-app"

// cluster is a test's handle on the real control plane (etcd,
// kube-apiserver, controller manager, scheduler, kwok nodes) that
// FERRY_TEST_KUBECONFIG points at.
type cluster struct {
	t          testing.TB
	kubeconfig string
	rc         *rest.Config
	cs         kubernetes.Interface
	dyn        dynamic.Interface
}

// testCluster connects to the control plane; it fails the test when
// FERRY_TEST_REQUIRE names kubernetes and the cluster is missing or
// unreachable, and skips it otherwise.
func testCluster(t testing.TB) *cluster {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if slices.Contains(strings.Split(os.Getenv("FERRY_TEST_REQUIRE"), ","), "kubernetes") {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	path := os.Getenv("FERRY_TEST_KUBECONFIG")
	if path == "" {
		missing("no Kubernetes control plane: set FERRY_TEST_KUBECONFIG (scripts/k8s-harness up prints it)")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		missing("FERRY_TEST_KUBECONFIG: %v", err)
	}
	rc.QPS, rc.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	probe := rest.CopyConfig(rc)
	probe.Timeout = 5 * time.Second
	if _, err := kubernetes.NewForConfigOrDie(probe).Discovery().ServerVersion(); err != nil {
		missing("Kubernetes control plane at %s unreachable: %v", rc.Host, err)
	}
	return &cluster{t: t, kubeconfig: path, rc: rc, cs: cs, dyn: dyn}
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

// namespace creates a uniquely named namespace, deleted when the test
// ends.
func (c *cluster) namespace() string {
	c.t.Helper()
	prefix := strings.ToLower(c.t.Name())
	prefix = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, prefix)
	name := strings.Trim(prefix[:min(len(prefix), 40)], "-") + "-" + randHex(4)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"ferry.test/package": "target-kube"}}}
	if _, err := c.cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		c.cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// spec is a spec of the test image at digest, as ferry would apply it.
func spec(digest string, id int64, replicas int) controller.Spec {
	return controller.Spec{
		Env: "test", Image: testImage, Digest: digest, Replicas: replicas,
		Commit: strings.Repeat(digest[7:8], 40), Release: "v" + digest[7:11], DeploymentID: id,
		Rollout: controller.Rollout{MaxSurge: 1, ReadyTimeout: 30 * time.Second},
	}
}

// testDeployment is a Deployment "app" with one container "app" running
// s, ferry's annotations on it and its template as a former Apply of s
// leaves them, rolling one replica at a time without going below the desired
// count.
func testDeployment(ns string, s controller.Spec) *appsv1.Deployment {
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
	d, err := c.cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
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
		d, err := c.cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
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

// target is a Target for the Deployment "app" in ns.
func (c *cluster) target(ns string, mod ...func(*Config)) *Target {
	c.t.Helper()
	cfg := Config{
		Env: "test", Namespace: ns, Deployment: "app",
		Logger: slog.New(slog.NewTextHandler(testWriter{c.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Poll:   200 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	t, err := NewForClient(cfg, c.cs)
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

var stageGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "stages"}

// Pod statuses that a kwok Stage gives the pods it selects: running but
// never ready, or crash-looping (restarted four times, waiting in
// CrashLoopBackOff).
const (
	neverReady = `
  ready: false
  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}`
	crashLooping = `
  ready: false
  restartCount: 4
  started: false
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
  state:
    waiting:
      reason: CrashLoopBackOff
      message: back-off 40s restarting failed container`
)

// brokenDigest makes every pod whose template carries ferry's digest
// annotation digest take the container status given (neverReady,
// crashLooping) instead of becoming ready: a kwok Stage of weight 1, which
// beats kwok's default pod-ready stage, deleted when the test ends. It
// returns once kwok applies the stage, proven on a probe pod in ns.
func (c *cluster) brokenDigest(ns, digest, containerStatus string) {
	c.t.Helper()
	ctx := context.Background()
	status := `{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}` + containerStatus + `
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
`
	name := "ferry-test-" + randHex(6)
	stage := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Stage",
		"metadata":   map[string]any{"name": name, "labels": map[string]any{"ferry.test/namespace": ns}},
		"spec": map[string]any{
			"resourceRef": map[string]any{"apiGroup": "v1", "kind": "Pod"},
			"selector": map[string]any{"matchExpressions": []any{
				map[string]any{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
				map[string]any{"key": ".status.phase", "operator": "In", "values": []any{"Pending"}},
				map[string]any{"key": `.metadata.annotations["` + AnnotationDigest + `"]`, "operator": "In", "values": []any{digest}},
			}},
			"weight": int64(1),
			"next":   map[string]any{"statusSubresource": "status", "statusTemplate": status},
		},
	}}
	if _, err := c.dyn.Resource(stageGVR).Create(ctx, stage, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("create kwok stage: %v", err)
	}
	c.t.Cleanup(func() { c.dyn.Resource(stageGVR).Delete(context.Background(), name, metav1.DeleteOptions{}) })

	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stage-probe", Namespace: ns, Annotations: map[string]string{AnnotationDigest: digest}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "app", Image: testImage + "@" + digest}},
			TerminationGracePeriodSeconds: new(int64(0)),
		},
	}
	if _, err := c.cs.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.eventually(30*time.Second, func() (bool, string) {
		p, err := c.cs.CoreV1().Pods(ns).Get(ctx, probe.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if podReady(p) {
			c.t.Fatalf("probe pod became ready: kwok did not apply stage %s", name)
		}
		return p.Status.Phase == corev1.PodRunning, fmt.Sprintf("probe pod: %+v", p.Status)
	})
	if err := c.cs.CoreV1().Pods(ns).Delete(ctx, probe.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		c.t.Fatal(err)
	}
}

// pods lists the pods in ns, terminating ones left out.
func (c *cluster) pods(ns string) []corev1.Pod {
	c.t.Helper()
	list, err := c.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=app"})
	if err != nil {
		c.t.Fatal(err)
	}
	return slices.DeleteFunc(list.Items, func(p corev1.Pod) bool { return p.DeletionTimestamp != nil })
}

// servingWatch checks, every 20 ms until stopped, that at least n pods of
// the Deployment in ns run image (any image when "") and are ready: the
// environment serves.
type servingWatch struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	checks int
	low    []string
}

func (c *cluster) watchServing(ns, image string, n int) *servingWatch {
	w := &servingWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			list, err := c.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=app"})
			if err != nil {
				continue
			}
			ready := 0
			for _, p := range list.Items {
				if p.DeletionTimestamp == nil && (image == "" || p.Spec.Containers[0].Image == image) && podReady(&p) {
					ready++
				}
			}
			w.mu.Lock()
			w.checks++
			if ready < n {
				w.low = append(w.low, fmt.Sprintf("%s: %d ready", time.Now().Format("15:04:05.000"), ready))
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// end stops the watch and fails the test if fewer than n pods served at
// any check.
func (w *servingWatch) end(t testing.TB) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.checks == 0 {
		t.Fatal("serving watch made no check")
	}
	if len(w.low) > 0 {
		t.Errorf("old replicas stopped serving (%d of %d checks): %s", len(w.low), w.checks, strings.Join(w.low[:min(5, len(w.low))], "; "))
	}
}
