package deploy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ferryhq/ferry/cosign"
	"github.com/ferryhq/ferry/internal/ferryimage"
	"github.com/ferryhq/ferry/internal/kubetest"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/leader"
	"github.com/ferryhq/ferry/ledger/postgres"
	"github.com/ferryhq/ferry/oci"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/server"
)

// TestFerryOnRealNode applies deploy/ferry as a user would, with ferry's
// own image (built by internal/ferryimage, pushed to a registry on
// loopback, signed) and the Secrets' values filled in, and runs its two
// replicas on the test cluster's real node (scripts/k8s-node): the
// PostgreSQL ledger's whole address comes from the ferry-ledger Secret,
// the API server is reached in-cluster through Service
// default/kubernetes. Both pods run and are ready; /readyz of exactly
// one says it leads, in the term of the ledger's lease, which names that
// pod; the other stands by for it. Deleting the leader's pod (it resigns
// on SIGTERM) lets the standby take over, timed, and the pod that
// replaces it stands by.
//
// Only the image, the Secrets' values, the namespaces (the test's own)
// and the pods' placement (the real node's label and taint) differ from
// what `kubectl apply -k deploy/ferry` applies; ferry.yaml is the file in
// the ConfigMap, with its environments' namespaces moved. Its git
// repository and registry (example.com) are out of the pods' reach: the
// leader's polls fail and are retried, which is not what this proves.
func TestFerryOnRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ferry's image and runs it on a real node")
	}
	k := connect(t)
	node := k.RealNode()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	// What the pods reach on the host, through relays on the node's
	// gateway: the ledger and the API server.
	pgURL := pgtest.NewDatabase(t)
	pg, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	ledgerAddr := k.Relay(pg.Host)
	k.APIForPods()

	image, signingKey, dockerConfig := pushFerryImage(ctx, t)

	base := "ferrynode-" + randHex(4)
	ns := map[string]string{"dev": base + "-dev", "prod": base + "-prod", "ferry": base + "-ferry"}
	for _, n := range []string{ns["dev"], ns["prod"]} { // the Roles' namespaces; deploy/ferry makes its own
		if _, err := k.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: n, Labels: map[string]string{"ferry.test/package": "deploy"},
		}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{ns["dev"], ns["prod"], ns["ferry"]} {
		t.Cleanup(func() { k.deleteNamespace(t, n) })
	}

	pgPassword, _ := pg.User.Password()
	ledgerHost, ledgerPort, _ := net.SplitHostPort(ledgerAddr)
	secrets := map[string]map[string]string{ // by generator name: every key's value
		"ferry-ledger": {
			"PGHOST": ledgerHost, "PGPORT": ledgerPort, "PGDATABASE": strings.TrimPrefix(pg.Path, "/"),
			"PGUSER": pg.User.Username(), "PGPASSWORD": pgPassword, "PGSSLMODE": "disable",
		},
		"ferry-secrets":  {"webhook-secret": randHex(16)},
		"ferry-git":      {"credentials": "https://ferry-bot:" + randHex(8) + "@git.example.com\n"},
		"ferry-signing":  {"signing.key": signingKey},
		"ferry-registry": {".dockerconfigjson": dockerConfig},
	}
	objs := renderObjects(t, "ferry")
	if err := relocate(objs, ns); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment":
			onRealNode(t, o, image)
		case "Secret":
			fillSecret(t, o, secrets)
		}
		if _, err := k.apply(ctx, o); err != nil {
			t.Fatalf("server-side apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	if len(secrets) > 0 {
		t.Fatalf("the render has no Secrets %v", secrets)
	}
	fns := ns["ferry"]
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("FERRY_TEST_DUMP") != "" {
			k.dumpPods(t, fns)
		}
	})

	started := time.Now()
	k.waitAvailable(ctx, t, fns, "ferry", 2)
	t.Logf("2 ferry pods ready %s after the apply", time.Since(started).Round(100*time.Millisecond))
	leaderPod, standbyPod := k.roles(ctx, t, fns, node)

	ledger, err := postgres.Open(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	lease, err := ledger.Leader(ctx, "birthday-app")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(lease.Holder, leaderPod.pod.Name+":") || lease.Address != net.JoinHostPort(leaderPod.pod.Status.PodIP, "8080") ||
		lease.Term != leaderPod.ready.Term || lease.Holder != leaderPod.ready.Holder {
		t.Errorf("the ledger's lease %+v, want pod %s's (%+v) at %s:8080", lease, leaderPod.pod.Name, leaderPod.ready, leaderPod.pod.Status.PodIP)
	}
	if standbyPod.ready.Leader != lease.Holder || standbyPod.ready.LeaderAddress != lease.Address || standbyPod.ready.Term != lease.Term {
		t.Errorf("the standby's /readyz %+v, want it to name the lease %+v", standbyPod.ready, lease)
	}
	t.Logf("pod %s leads in term %d; pod %s stands by", leaderPod.pod.Name, lease.Term, standbyPod.pod.Name)

	// A freed lease goes first to the server that stood by longer
	// (server/standby.go): by a margin of a campaign period or more once
	// the standby stood by a whole TTL, which it has by this wait even
	// when ferry started a second or two after its container.
	if cs := standbyPod.pod.Status.ContainerStatuses; len(cs) == 1 && cs[0].State.Running != nil {
		time.Sleep(time.Until(cs[0].State.Running.StartedAt.Add(leader.DefaultTTL + time.Second)))
	}

	// The leader's pod goes, as in a drain: SIGTERM, it resigns, and the
	// standby takes over.
	deleted := time.Now()
	if err := k.Client.CoreV1().Pods(fns).Delete(ctx, leaderPod.pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var took time.Duration
	k.waitFor(ctx, t, "the standby to lead", func() (bool, string) {
		r, err := readyz(standbyPod.pod.Status.PodIP)
		if err != nil {
			return false, err.Error()
		}
		took = time.Since(deleted)
		return r.Role == "leader", fmt.Sprintf("%+v", r)
	})
	t.Logf("takeover: pod %s's /readyz said it leads %s after the leader's pod was deleted", standbyPod.pod.Name, took.Round(10*time.Millisecond))

	k.waitAvailable(ctx, t, fns, "ferry", 2)
	newLeader, newStandby := k.roles(ctx, t, fns, node)
	if newLeader.pod.Name != standbyPod.pod.Name || newStandby.pod.Name == leaderPod.pod.Name {
		t.Errorf("after the takeover %s leads and %s stands by; want %s leading and a new pod standing by", newLeader.pod.Name, newStandby.pod.Name, standbyPod.pod.Name)
	}
	if newLeader.ready.Term <= lease.Term {
		t.Errorf("the new leader's term %d, want after %d", newLeader.ready.Term, lease.Term)
	}
	lease, err = ledger.Leader(ctx, "birthday-app")
	if err != nil {
		t.Fatal(err)
	}
	if lease.Holder != newLeader.ready.Holder || lease.Term != newLeader.ready.Term || newStandby.ready.Leader != lease.Holder {
		t.Errorf("after the takeover the lease is %+v; the leader says %+v, the new standby %+v", lease, newLeader.ready, newStandby.ready)
	}
	t.Logf("pod %s leads in term %d; the replacement %s stands by", newLeader.pod.Name, lease.Term, newStandby.pod.Name)
}

// pushFerryImage builds ferry's image from this checkout, pushes it to a
// registry on loopback (the real node pulls from there) and signs it. It
// returns the image by digest, the signing key (PEM) the servers share,
// and a docker config.json with the registry's credentials.
func pushFerryImage(ctx context.Context, t *testing.T) (image, key, dockerConfig string) {
	t.Helper()
	reg, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	user, password := reg.Credentials()
	dockerConfig = fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg.Host(), base64.StdEncoding.EncodeToString([]byte(user+":"+password)))

	commit, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	cfg := ferryimage.Config{
		ModuleDir: "..", Commit: strings.TrimSpace(string(commit)), Created: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
		Source: "https://github.com/ferryhq/ferry", Version: "node-test",
	}
	var log bytes.Buffer
	began := time.Now()
	img, err := ferryimage.Build(ctx, cfg, &log)
	if err != nil {
		t.Fatalf("build ferry's image: %v\n%s", err, log.String())
	}
	keyDir := t.TempDir()
	k, err := cosign.LoadOrCreateKey(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(keyDir, cosign.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := oci.NewPublisher(reg.Host()+"/ferry", oci.WithBasicAuth(user, password))
	if err != nil {
		t.Fatal(err)
	}
	digest, err := ferryimage.Publish(ctx, img, cfg, pub, cosign.NewSigner(k, pub), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ferry's image %s built, pushed and signed in %s", pub.Ref(digest), time.Since(began).Round(100*time.Millisecond))
	return pub.Ref(digest), string(pem), dockerConfig
}

// onRealNode sets the rendered Deployment's container image and pins its
// pods to the real node.
func onRealNode(t *testing.T, o *unstructured.Unstructured, image string) {
	t.Helper()
	spec, _, err := unstructured.NestedMap(o.Object, "spec", "template", "spec")
	if err != nil {
		t.Fatal(err)
	}
	var ps corev1.PodSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(spec, &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", o.GetName(), len(ps.Containers))
	}
	ps.Containers[0].Image = image
	kubetest.OnRealNode(&ps)
	out, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ps)
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedMap(o.Object, out, "spec", "template", "spec"); err != nil {
		t.Fatal(err)
	}
}

// fillSecret replaces a generated Secret's placeholder values with those
// of values[its generator's name], which must name every key it has; the
// entry is removed once used.
func fillSecret(t *testing.T, o *unstructured.Unstructured, values map[string]map[string]string) {
	t.Helper()
	name := o.GetName()
	gen := name[:strings.LastIndex(name, "-")] // without the generator's hash
	want, ok := values[gen]
	if !ok {
		t.Fatalf("no values for Secret %s", name)
	}
	delete(values, gen)
	data, _, err := unstructured.NestedStringMap(o.Object, "data")
	if err != nil {
		t.Fatal(err)
	}
	for k := range data {
		if _, ok := want[k]; !ok {
			t.Fatalf("Secret %s has key %s the test does not fill", name, k)
		}
	}
	filled := map[string]string{}
	for k, v := range want {
		filled[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	if err := unstructured.SetNestedStringMap(o.Object, filled, "data"); err != nil {
		t.Fatal(err)
	}
}

// ferryPod is one ferry pod and what its /readyz answered.
type ferryPod struct {
	pod   corev1.Pod
	ready server.Readiness
}

// roles returns ns's two ferry pods, both Running and ready on node: the
// one whose /readyz says it leads and the one that stands by.
func (k *kube) roles(ctx context.Context, t *testing.T, ns, node string) (leader, standby ferryPod) {
	t.Helper()
	pods, err := k.ReadyPods(ctx, ns, "app.kubernetes.io/name=ferry")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != node {
			t.Errorf("pod %s is %s on %q, want Running on %s", p.Name, p.Status.Phase, p.Spec.NodeName, node)
		}
		r, err := readyz(p.Status.PodIP)
		if err != nil {
			t.Fatalf("pod %s: %v", p.Name, err)
		}
		if !strings.HasPrefix(r.Holder, p.Name+":") {
			t.Errorf("pod %s's /readyz names holder %s, want the pod's name first", p.Name, r.Holder)
		}
		switch r.Role {
		case "leader":
			if leader.pod.Name != "" {
				t.Fatalf("pods %s and %s both lead (%+v, %+v)", leader.pod.Name, p.Name, leader.ready, r)
			}
			leader = ferryPod{p, r}
		case "standby":
			standby = ferryPod{p, r}
		}
		got = append(got, fmt.Sprintf("%s: %+v", p.Name, r))
	}
	if len(pods) != 2 || leader.pod.Name == "" || standby.pod.Name == "" {
		t.Fatalf("ferry's ready pods: %v; want one leader and one standby", got)
	}
	return leader, standby
}

// readyz is GET /readyz of the ferry pod at ip, from the host.
func readyz(ip string) (server.Readiness, error) {
	var r server.Readiness
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(ip, "8080") + "/readyz")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET /readyz of %s = %d %s", ip, resp.StatusCode, body)
	}
	return r, json.Unmarshal(body, &r)
}

// deleteNamespace deletes ns and waits (up to 2 minutes) until its pods
// are gone, so that none outlives the relays it uses.
func (k *kube) deleteNamespace(t *testing.T, ns string) {
	ctx := context.Background()
	err := k.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Errorf("delete namespace %s: %v", ns, err)
		return
	}
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		pods, err := k.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return
		}
	}
	t.Errorf("namespace %s still has pods 2 minutes after its deletion", ns)
}

// dumpPods logs each pod's state and its logs' last lines, for failures.
func (k *kube) dumpPods(t *testing.T, ns string) {
	ctx := context.Background()
	pods, err := k.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods of %s: %v", ns, err)
		return
	}
	for _, p := range pods.Items {
		t.Logf("pod %s: %s on %q, ip %s, conditions %+v, containers %+v", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP, p.Status.Conditions, p.Status.ContainerStatuses)
		tail := int64(40)
		logs, err := k.Client.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx)
		t.Logf("pod %s's logs (%v):\n%s", p.Name, err, logs)
	}
	t.Logf("events: %s", k.events(ctx, ns))
}
