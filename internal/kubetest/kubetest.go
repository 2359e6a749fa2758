// Package kubetest connects tests to the real Kubernetes control plane
// that scripts/k8s-harness runs (etcd, kube-apiserver, controller manager,
// scheduler, kwok's fake nodes, and the one real node of scripts/k8s-node
// when FERRY_TEST_NODE names it), named by FERRY_TEST_KUBECONFIG: uniquely
// named namespaces deleted when the test ends, kwok Stages that give chosen
// pods a status of the test's choice instead of Ready, and the pods that
// are ready. Only tests import it.
package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferryhq/ferry/internal/testenv"
)

// Cluster is a test's handle on the control plane.
type Cluster struct {
	Kubeconfig string       // the path in FERRY_TEST_KUBECONFIG
	Config     *rest.Config // admin (system:masters), QPS 50, burst 100
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface

	t testing.TB
}

// Connect connects to the control plane FERRY_TEST_KUBECONFIG names. When
// it is unset, unreadable or the API server does not answer within 5
// seconds, the test fails if FERRY_TEST_REQUIRE (a comma list) names
// kubernetes, and is skipped otherwise.
func Connect(t testing.TB) *Cluster {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		testenv.Unavailable(t, "kubernetes", "no Kubernetes control plane: %s; start one with scripts/k8s-harness up and set FERRY_TEST_KUBECONFIG to the KUBECONFIG it prints",
			fmt.Sprintf(format, args...))
	}
	path := os.Getenv("FERRY_TEST_KUBECONFIG")
	if path == "" {
		missing("FERRY_TEST_KUBECONFIG is not set")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		missing("FERRY_TEST_KUBECONFIG: %v", err)
	}
	rc.QPS, rc.Burst = 50, 100
	probe := rest.CopyConfig(rc)
	probe.Timeout = 5 * time.Second
	pcs, err := kubernetes.NewForConfig(probe)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pcs.Discovery().ServerVersion(); err != nil {
		missing("API server at %s (FERRY_TEST_KUBECONFIG=%s) unreachable: %v", rc.Host, path, err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &Cluster{Kubeconfig: path, Config: rc, Client: cs, Dynamic: dyn, t: t}
}

// Namespace creates a namespace named prefix (made a valid name: lower
// case, other characters as '-', at most 40 of them) and a random suffix,
// labelled ferry.test/package with the test binary's package, and deletes
// it when the test ends (a failed delete fails the test).
func (c *Cluster) Namespace(prefix string) string {
	c.t.Helper()
	name := dnsLabel(prefix, 40)
	if name == "" {
		name = "test"
	}
	name += "-" + randHex(4)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"ferry.test/package": dnsLabel(strings.TrimSuffix(filepath.Base(os.Args[0]), ".test"), 63),
	}}}
	if _, err := c.Client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("create namespace %s: %v", name, err)
	}
	c.t.Cleanup(func() {
		err := c.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			c.t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return name
}

// dnsLabel is s in lower case with every character but a-z and 0-9 turned
// into '-', cut to n characters, without '-' at either end.
func dnsLabel(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
	return strings.Trim(s[:min(len(s), n)], "-")
}

// randHex is n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var stages = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "stages"}

// Stage makes kwok give every new pod (Pending, not terminating) whose
// annotation key has value the pod status template status (CrashLoop,
// NotReady) instead of Ready: a cluster-scoped kwok Stage of weight 1, which
// beats the harness's default stages (weight 0), deleted when the test
// ends. It returns once kwok applies the Stage, proven on a probe pod in
// ns that it deletes again.
func (c *Cluster) Stage(ns, key, value, status string) {
	c.t.Helper()
	ctx := context.Background()
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
				map[string]any{"key": `.metadata.annotations["` + key + `"]`, "operator": "In", "values": []any{value}},
			}},
			"weight": int64(1),
			"next":   map[string]any{"statusSubresource": "status", "statusTemplate": status},
		},
	}}
	if _, err := c.Dynamic.Resource(stages).Create(ctx, stage, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("create kwok stage: %v", err)
	}
	c.t.Cleanup(func() {
		err := c.Dynamic.Resource(stages).Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			c.t.Errorf("delete kwok stage %s: %v", name, err)
		}
	})

	// kwok learns of a new Stage through its watch, so a pod made at once
	// may still get the default stages: a probe that turns Ready proves
	// only that, and the next probe tries again.
	for end := time.Now().Add(30 * time.Second); ; {
		applied, last := c.probeStage(ctx, ns, key, value, end)
		if applied {
			return
		}
		if time.Now().After(end) {
			c.t.Fatalf("after 30s, kwok does not apply stage %s to a probe pod: %+v", name, last)
		}
	}
}

// probeStage makes a probe pod in ns with annotation key=value and waits
// until kwok runs it, at most until end: applied when it runs and is not
// Ready (the test's Stage took it), false when it became Ready (the
// default stages did) or end passed. The probe is deleted again.
func (c *Cluster) probeStage(ctx context.Context, ns, key, value string, end time.Time) (applied bool, last corev1.PodStatus) {
	c.t.Helper()
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stage-probe-" + randHex(4), Namespace: ns, Annotations: map[string]string{key: value}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "app", Image: "registry.invalid/stage-probe:unset"}},
			TerminationGracePeriodSeconds: new(int64(0)),
		},
	}
	pods := c.Client.CoreV1().Pods(ns)
	if _, err := pods.Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("create a probe pod: %v", err)
	}
	defer func() {
		if err := pods.Delete(ctx, probe.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil && !apierrors.IsNotFound(err) {
			c.t.Fatalf("delete probe pod %s: %v", probe.Name, err)
		}
	}()
	for ; time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		p, err := pods.Get(ctx, probe.Name, metav1.GetOptions{})
		if err != nil {
			c.t.Fatalf("probe pod %s: %v", probe.Name, err)
		}
		last = p.Status
		switch {
		case PodReady(p):
			return false, last
		case p.Status.Phase == corev1.PodRunning:
			return true, last
		}
	}
	return false, last
}

// Pod status templates for Stage. Both run, are not Ready, and keep their
// pod and host IPs.
const (
	// NotReady is a pod whose containers run but never pass their
	// readiness probe: no restarts, so nothing ends a rollout early.
	NotReady = podStatusHead + `
  ready: false
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}` + podStatusTail

	// CrashLoop is a pod whose containers crash on start: restarted 4
	// times, the last exit code 1 (Error), waiting in CrashLoopBackOff.
	CrashLoop = podStatusHead + `
  ready: false
  started: false
  restartCount: 4
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
  state:
    waiting:
      reason: CrashLoopBackOff
      message: back-off 40s restarting failed container` + podStatusTail

	podStatusHead = `{{ $now := Now }}
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
  name: {{ .name | Quote }}`
	podStatusTail = `
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace | Quote }}
phase: Running
startTime: {{ $now | Quote }}
`
)

// PodReady reports p's Ready condition.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ReadyPods lists the pods in ns that selector (a label selector) selects
// and that are Ready and not terminating.
func (c *Cluster) ReadyPods(ctx context.Context, ns, selector string) ([]corev1.Pod, error) {
	list, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list pods %s in %s: %w", selector, ns, err)
	}
	var ready []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && PodReady(&p) {
			ready = append(ready, p)
		}
	}
	return ready, nil
}

// ReadyCount is how many pods a ReadyWatch found ready, and when.
type ReadyCount struct {
	At    time.Time
	Ready int
}

// ReadyWatch counts ready pods every 20 ms until stopped.
type ReadyWatch struct {
	stop, done chan struct{}
	once       sync.Once
	counts     []ReadyCount
}

// WatchReady counts, every 20 ms until Stop or the end of the test, the
// ReadyPods in ns that selector selects and whose first container runs
// image (any image when ""). A failed list counts nothing.
func (c *Cluster) WatchReady(ns, selector, image string) *ReadyWatch {
	w := &ReadyWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			if pods, err := c.ReadyPods(context.Background(), ns, selector); err == nil {
				n := 0
				for _, p := range pods {
					if image == "" || p.Spec.Containers[0].Image == image {
						n++
					}
				}
				w.counts = append(w.counts, ReadyCount{At: time.Now(), Ready: n})
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	c.t.Cleanup(func() { w.Stop() })
	return w
}

// Stop ends the watch and returns its counts, oldest first.
func (w *ReadyWatch) Stop() []ReadyCount {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return w.counts
}

// RealNodeLabel labels and taints (NoSchedule) the one real node that
// scripts/k8s-node joins to the control plane: its pods really run, under
// containerd and runc, and a NodePort Service answers on 127.0.0.1. Only
// pods that select the label and tolerate the taint land there (OnRealNode),
// so every other test's pods stay on kwok's nodes.
const RealNodeLabel = "ferry.dev/real-node"

// RealNode returns the name of the real node FERRY_TEST_NODE names, once
// it is Ready (within 30 seconds). When it is unset or the node is not
// Ready, the test fails if FERRY_TEST_REQUIRE names node, and is skipped
// otherwise.
func (c *Cluster) RealNode() string {
	c.t.Helper()
	name := os.Getenv("FERRY_TEST_NODE")
	if name == "" {
		testenv.Unavailable(c.t, "node", "no real Kubernetes node: FERRY_TEST_NODE is not set; start one (as root) with scripts/k8s-node up DIR CLUSTER and set FERRY_TEST_NODE to the name it prints")
	}
	var last string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		n, err := c.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		switch {
		case err != nil:
			last = err.Error()
		case n.Labels[RealNodeLabel] != "true":
			last = fmt.Sprintf("node %s lacks label %s=true", name, RealNodeLabel)
		default:
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					if cond.Status == corev1.ConditionTrue {
						return name
					}
					last = fmt.Sprintf("node %s is not Ready: %s", name, cond.Message)
				}
			}
		}
	}
	testenv.Unavailable(c.t, "node", "the real Kubernetes node FERRY_TEST_NODE=%s is not ready: %s", name, last)
	return ""
}

// OnRealNode pins a pod spec to the real node: it selects RealNodeLabel
// and tolerates its taint.
func OnRealNode(spec *corev1.PodSpec) {
	if spec.NodeSelector == nil {
		spec.NodeSelector = map[string]string{}
	}
	spec.NodeSelector[RealNodeLabel] = "true"
	spec.Tolerations = append(spec.Tolerations, corev1.Toleration{
		Key: RealNodeLabel, Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule,
	})
}

// PauseImage is the real node's sandbox image (the static program in
// ./pause), present on the node without a pull: a placeholder container
// that runs and serves nothing.
const PauseImage = "ferry.test/pause:1"
