package deploy

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/cosign"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the manifests")

// renders are the kustomizations this package ships, each with its golden
// file testdata/golden/<name>.yaml.
var renders = []struct{ name, dir string }{
	{"dev", "birthday-app/overlays/dev"},
	{"prod", "birthday-app/overlays/prod"},
	{"ferry", "ferry"},
}

// TestGolden renders each kustomization and compares it with its golden
// file; -update rewrites the files instead.
func TestGolden(t *testing.T) {
	for _, r := range renders {
		t.Run(r.name, func(t *testing.T) {
			got, err := Render(r.dir)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", r.name+".yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./deploy -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Render(%q) differs from %s (-golden +rendered); run with -update if the change is meant:\n%s",
					r.dir, golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Render(filepath.Join(dir, "missing")); err == nil {
		t.Error("Render(a missing directory) succeeded, want an error")
	}
	kust := "resources:\n  - nowhere.yaml\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Render(dir); err == nil || !strings.Contains(err.Error(), "nowhere.yaml") {
		t.Errorf("Render(a kustomization naming a missing file) = %v, want an error naming nowhere.yaml", err)
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in    string
		kinds []string
		err   string
	}{
		{"", nil, ""},
		{"---\n---\n", nil, ""},
		{"apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n", []string{"Service", "Secret"}, ""},
		{`{"apiVersion": "v1", "kind": "ConfigMap"}`, []string{"ConfigMap"}, ""},
		{"apiVersion: v1\nkind: Service\n---\nmetadata: {name: b}\n", nil, "document 2: no apiVersion or kind"},
		{"apiVersion: v1\nkind: [\n", nil, "document 1"},
	} {
		objs, err := Split([]byte(tc.in))
		var kinds []string
		for _, o := range objs {
			kinds = append(kinds, o.GetKind())
		}
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Split(%q) = %v, %v, want an error containing %q", tc.in, kinds, err, tc.err)
		case tc.err == "" && (err != nil || !slices.Equal(kinds, tc.kinds)):
			t.Errorf("Split(%q) = %v, %v, want %v", tc.in, kinds, err, tc.kinds)
		}
	}
}

// rendered is one kustomization's output, split and indexed.
type rendered struct {
	name string
	objs []*unstructured.Unstructured
}

func renderObjects(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Split(out)
	if err != nil {
		t.Fatalf("Split(Render(%q)): %v", dir, err)
	}
	return objs
}

func renderAll(t *testing.T) map[string]*rendered {
	t.Helper()
	m := map[string]*rendered{}
	for _, r := range renders {
		m[r.name] = &rendered{name: r.name, objs: renderObjects(t, r.dir)}
	}
	return m
}

// find returns the object of kind and name in namespace ns ("" for any),
// decoded into a T.
func find[T any](t *testing.T, r *rendered, kind, ns, name string) *T {
	t.Helper()
	for _, o := range r.objs {
		if o.GetKind() == kind && o.GetName() == name && (ns == "" || o.GetNamespace() == ns) {
			return decode[T](t, o)
		}
	}
	return nil
}

// all returns every object of kind, decoded into Ts.
func all[T any](t *testing.T, r *rendered, kind string) []*T {
	t.Helper()
	var out []*T
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, decode[T](t, o))
		}
	}
	return out
}

func decode[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	v := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, v, true); err != nil {
		t.Fatalf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
	return v
}

// TestPodHardening checks every workload of every render: non-root,
// read-only, no privilege escalation, no capabilities, seccomp, resources.
func TestPodHardening(t *testing.T) {
	for _, r := range renderAll(t) {
		var pods []struct {
			what string
			spec corev1.PodSpec
		}
		for _, d := range all[appsv1.Deployment](t, r, "Deployment") {
			pods = append(pods, struct {
				what string
				spec corev1.PodSpec
			}{r.name + ": Deployment " + d.Name, d.Spec.Template.Spec})
		}
		for _, s := range all[appsv1.StatefulSet](t, r, "StatefulSet") {
			pods = append(pods, struct {
				what string
				spec corev1.PodSpec
			}{r.name + ": StatefulSet " + s.Name, s.Spec.Template.Spec})
		}
		if len(pods) == 0 {
			t.Errorf("%s renders no workload", r.name)
		}
		for _, p := range pods {
			psc := p.spec.SecurityContext
			if psc == nil || !isTrue(psc.RunAsNonRoot) || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", p.what, psc)
			}
			for _, c := range p.spec.Containers {
				sc := c.SecurityContext
				switch {
				case sc == nil:
					t.Errorf("%s: container %s has no securityContext", p.what, c.Name)
					continue
				case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
					t.Errorf("%s: container %s may escalate privileges", p.what, c.Name)
				case !isTrue(sc.ReadOnlyRootFilesystem):
					t.Errorf("%s: container %s has a writable root filesystem", p.what, c.Name)
				case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
					t.Errorf("%s: container %s capabilities %+v, want drop ALL and no add", p.what, c.Name, sc.Capabilities)
				case sc.Privileged != nil && *sc.Privileged:
					t.Errorf("%s: container %s is privileged", p.what, c.Name)
				}
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
					t.Errorf("%s: container %s resources %+v, want cpu and memory requests and a memory limit", p.what, c.Name, c.Resources)
				}
				if c.Image == "" || c.ImagePullPolicy == "" {
					t.Errorf("%s: container %s image %q pull policy %q", p.what, c.Name, c.Image, c.ImagePullPolicy)
				}
			}
		}
		for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
			for _, o := range r.objs {
				if o.GetKind() == kind {
					t.Errorf("%s renders %s %s: ferry must need no cluster-wide rights", r.name, kind, o.GetName())
				}
			}
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// TestBirthdayApp checks what the overlays promise birthday-app: zero-downtime
// rollouts, probes on the app's own endpoints, a shutdown that fits in the
// grace period, the database URL the app reads, and selectors that select.
func TestBirthdayApp(t *testing.T) {
	rs := renderAll(t)
	for _, env := range []struct {
		name       string
		minReplica int32
		exposed    bool // reachable from outside the cluster (prod's Ingress)
	}{
		{"dev", 2, false},
		{"prod", 3, true},
	} {
		t.Run(env.name, func(t *testing.T) {
			r := rs[env.name]
			for _, o := range r.objs {
				if o.GetKind() == "Namespace" {
					if o.GetName() != env.name {
						t.Errorf("Namespace %s, want %s", o.GetName(), env.name)
					}
				} else if o.GetNamespace() != env.name {
					t.Errorf("%s %s is in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), env.name)
				}
			}
			ns := find[corev1.Namespace](t, r, "Namespace", "", env.name)
			if ns == nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("Namespace %s = %+v, want one enforcing the restricted pod security standard", env.name, ns)
			}
			d := find[appsv1.Deployment](t, r, "Deployment", env.name, "birthday-app")
			if d == nil {
				t.Fatal("no Deployment birthday-app")
			}
			checkDeployment(t, d)
			checkDatabaseURL(t, r, d)

			hpa := find[autoscalingv2.HorizontalPodAutoscaler](t, r, "HorizontalPodAutoscaler", env.name, "birthday-app")
			switch {
			case hpa == nil:
				t.Error("no HorizontalPodAutoscaler birthday-app")
			case hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != d.Name:
				t.Errorf("HPA targets %+v, want Deployment %s", hpa.Spec.ScaleTargetRef, d.Name)
			case hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != env.minReplica || hpa.Spec.MaxReplicas <= *hpa.Spec.MinReplicas:
				t.Errorf("HPA bounds %v..%d, want %d..more", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, env.minReplica)
			case len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU:
				t.Errorf("HPA metrics %+v, want CPU", hpa.Spec.Metrics)
			}

			podLabels := labels.Set(d.Spec.Template.Labels)
			selects := func(what string, sel *metav1.LabelSelector) {
				t.Helper()
				s, err := metav1.LabelSelectorAsSelector(sel)
				if err != nil || s.Empty() || !s.Matches(podLabels) {
					t.Errorf("%s selector %v (%v) does not select the app's pods %v", what, sel, err, podLabels)
				}
			}
			pdb := find[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", env.name, "birthday-app")
			if pdb == nil || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
				t.Errorf("PodDisruptionBudget = %+v, want maxUnavailable 1", pdb)
			} else {
				selects("PodDisruptionBudget", pdb.Spec.Selector)
			}
			svc := find[corev1.Service](t, r, "Service", env.name, "birthday-app")
			if svc == nil {
				t.Fatal("no Service birthday-app")
			}
			selects("Service", &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
			if svc.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("Service type %s, want ClusterIP (prod is exposed by its Ingress)", svc.Spec.Type)
			}
			for _, s := range all[corev1.Service](t, r, "Service") {
				if s.Spec.Type == corev1.ServiceTypeLoadBalancer || s.Spec.Type == corev1.ServiceTypeNodePort {
					t.Errorf("Service %s is %s: only the Ingress may expose an environment", s.Name, s.Spec.Type)
				}
			}

			ingresses := all[networkingv1.Ingress](t, r, "Ingress")
			if env.exposed != (len(ingresses) > 0) {
				t.Errorf("%d Ingresses, want exposed=%v", len(ingresses), env.exposed)
			}
			for _, ing := range ingresses {
				for _, rule := range ing.Spec.Rules {
					for _, p := range rule.HTTP.Paths {
						b := p.Backend.Service
						if b == nil || b.Name != svc.Name || b.Port.Name != svc.Spec.Ports[0].Name {
							t.Errorf("Ingress %s backend %+v, want Service %s port %s", ing.Name, b, svc.Name, svc.Spec.Ports[0].Name)
						}
					}
				}
				if len(ing.Spec.TLS) == 0 {
					t.Errorf("Ingress %s has no TLS", ing.Name)
				}
			}
			checkNetworkPolicies(t, r, d, env.exposed)
		})
	}
}

func checkDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if d.Spec.Replicas != nil {
		t.Errorf("Deployment sets replicas %d: the HPA owns the count", *d.Spec.Replicas)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		ru.MaxSurge == nil || ru.MaxSurge.String() != "1" || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "0" {
		t.Errorf("strategy %+v, want RollingUpdate maxSurge 1 maxUnavailable 0", d.Spec.Strategy)
	}
	p := d.Spec.Template.Spec
	if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
		t.Error("the app's pods mount a ServiceAccount token")
	}
	if p.SecurityContext == nil || p.SecurityContext.RunAsUser == nil || *p.SecurityContext.RunAsUser != 65532 {
		t.Errorf("pod securityContext %+v, want runAsUser 65532", p.SecurityContext)
	}
	if len(p.TopologySpreadConstraints) == 0 {
		t.Error("no topology spread constraints")
	}
	if len(p.Containers) != 1 || p.Containers[0].Name != "app" {
		t.Fatalf("containers %v, want the one container app (ferry sets its image)", p.Containers)
	}
	c := p.Containers[0]
	if c.Image == "birthday-app" || !strings.HasPrefix(c.Image, "registry.example.com/") {
		t.Errorf("image %q: the overlay did not replace the base's placeholder", c.Image)
	}
	probe := func(what string, pr *corev1.Probe, path string) {
		t.Helper()
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != path || pr.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v, want GET %s on port http", what, pr, path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/statusz")
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("startup", c.StartupProbe, "/healthz")
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("ports %+v, want http 8080", c.Ports)
	}
	env := envMap(c)
	if env["BIRTHDAY_LISTEN"] != ":8080" {
		t.Errorf("BIRTHDAY_LISTEN = %q, want :8080 (the app defaults to loopback)", env["BIRTHDAY_LISTEN"])
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Exec != nil {
		t.Fatalf("preStop %+v, want the kubelet's sleep handler (the image has no shell)", c.Lifecycle)
	}
	// The pod must finish its preStop sleep, the app's shutdown delay and
	// its requests in flight before the kubelet's SIGKILL.
	var need int64 = c.Lifecycle.PreStop.Sleep.Seconds
	for _, name := range []string{"BIRTHDAY_SHUTDOWN_DELAY", "BIRTHDAY_SHUTDOWN_TIMEOUT"} {
		dur, err := parseSeconds(env[name])
		if err != nil {
			t.Errorf("%s = %q: %v", name, env[name], err)
		}
		need += dur
	}
	if p.TerminationGracePeriodSeconds == nil || *p.TerminationGracePeriodSeconds <= need {
		t.Errorf("terminationGracePeriodSeconds %v, want more than preStop + shutdown delay + timeout = %d s", p.TerminationGracePeriodSeconds, need)
	}
	if delay, _ := parseSeconds(env["BIRTHDAY_SHUTDOWN_DELAY"]); delay < int64(c.ReadinessProbe.PeriodSeconds) {
		t.Errorf("shutdown delay %d s is shorter than the readiness period %d s", delay, c.ReadinessProbe.PeriodSeconds)
	}
}

func parseSeconds(s string) (int64, error) {
	var n int64
	if _, err := fmt.Sscanf(s, "%ds", &n); err != nil || fmt.Sprintf("%ds", n) != s {
		return 0, fmt.Errorf("want whole seconds like 5s")
	}
	return n, nil
}

func envMap(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkDatabaseURL follows BIRTHDAY_DB (what the app reads) to the Secret
// and the database Service of the same render, as the kubelet would expand
// it.
func checkDatabaseURL(t *testing.T, r *rendered, d *appsv1.Deployment) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	idx := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "BIRTHDAY_DB" })
	if idx < 0 {
		t.Fatal("no BIRTHDAY_DB in the app's environment")
	}
	raw := c.Env[idx].Value
	// $(VAR) expands only to variables defined earlier in the list.
	expanded := envRef.ReplaceAllStringFunc(raw, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		j := slices.IndexFunc(c.Env[:idx], func(e corev1.EnvVar) bool { return e.Name == name })
		if j < 0 {
			t.Errorf("BIRTHDAY_DB refers to $(%s), not defined before it", name)
			return ref
		}
		ref2 := c.Env[j].ValueFrom
		if ref2 == nil || ref2.SecretKeyRef == nil {
			t.Errorf("%s is not read from a Secret", name)
			return ref
		}
		sec := find[corev1.Secret](t, r, "Secret", d.Namespace, ref2.SecretKeyRef.Name)
		if sec == nil {
			t.Errorf("%s reads Secret %s, which the render lacks", name, ref2.SecretKeyRef.Name)
			return ref
		}
		v, ok := sec.Data[ref2.SecretKeyRef.Key]
		if !ok {
			t.Errorf("Secret %s has no key %s", sec.Name, ref2.SecretKeyRef.Key)
		}
		return string(v)
	})
	u, err := url.Parse(expanded)
	if err != nil {
		t.Fatalf("BIRTHDAY_DB expands to an invalid URL: %v", err)
	}
	pw, _ := u.User.Password()
	if u.Scheme != "postgres" || u.User.Username() == "" || pw == "" || u.Path != "/birthday" {
		t.Errorf("BIRTHDAY_DB = %s, want postgres://user:password@host/birthday", u.Redacted())
	}
	svc := find[corev1.Service](t, r, "Service", d.Namespace, u.Hostname())
	if svc == nil {
		t.Fatalf("BIRTHDAY_DB host %s is no Service of this environment", u.Hostname())
	}
	if len(svc.Spec.Ports) != 1 || fmt.Sprint(svc.Spec.Ports[0].Port) != u.Port() {
		t.Errorf("Service %s ports %+v, BIRTHDAY_DB port %s", svc.Name, svc.Spec.Ports, u.Port())
	}
	sts := find[appsv1.StatefulSet](t, r, "StatefulSet", d.Namespace, svc.Name)
	if sts == nil || len(sts.Spec.VolumeClaimTemplates) == 0 || sts.Spec.ServiceName != svc.Name || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Fatalf("the database is not a StatefulSet %s with a PVC template behind the headless Service", svc.Name)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(sts.Spec.Template.Labels)) {
		t.Errorf("Service %s does not select the StatefulSet's pods", svc.Name)
	}
	// The database's own user and password come from the same Secret keys.
	pg := envMap(sts.Spec.Template.Spec.Containers[0])
	if pg["POSTGRES_DB"] != strings.TrimPrefix(u.Path, "/") {
		t.Errorf("POSTGRES_DB = %q, BIRTHDAY_DB names database %s", pg["POSTGRES_DB"], u.Path)
	}
	for _, e := range sts.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "POSTGRES_PASSWORD" || e.Name == "POSTGRES_USER" {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || !strings.HasPrefix(e.ValueFrom.SecretKeyRef.Name, "birthday-db-") {
				t.Errorf("database %s = %+v, want it from the birthday-db Secret", e.Name, e)
			}
		}
	}
}

// checkNetworkPolicies: the database admits only the app; the app admits
// its own namespace (dev) or only the ingress controller (prod).
func checkNetworkPolicies(t *testing.T, r *rendered, d *appsv1.Deployment, exposed bool) {
	t.Helper()
	app := labels.Set(d.Spec.Template.Labels)
	var admitsApp []networkingv1.NetworkPolicyPeer
	for _, np := range all[networkingv1.NetworkPolicy](t, r, "NetworkPolicy") {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Empty() && sel.Matches(app) {
			for _, in := range np.Spec.Ingress {
				admitsApp = append(admitsApp, in.From...)
			}
		}
	}
	if len(admitsApp) != 1 {
		t.Fatalf("the app's pods admit %d peers, want exactly 1", len(admitsApp))
	}
	peer := admitsApp[0]
	switch {
	case !exposed && (peer.NamespaceSelector != nil || peer.IPBlock != nil || peer.PodSelector == nil || !labels.SelectorFromSet(peer.PodSelector.MatchLabels).Empty()):
		t.Errorf("dev admits %+v, want every pod of its own namespace and nothing else", peer)
	case exposed && (peer.NamespaceSelector == nil || peer.IPBlock != nil || peer.PodSelector == nil || len(peer.PodSelector.MatchLabels) == 0):
		t.Errorf("prod admits %+v, want the ingress controller's pods only", peer)
	}
	if np := find[networkingv1.NetworkPolicy](t, r, "NetworkPolicy", d.Namespace, "default-deny-ingress"); np == nil || len(np.Spec.PodSelector.MatchLabels) != 0 || len(np.Spec.Ingress) != 0 {
		t.Errorf("default-deny-ingress = %+v, want every pod denied by default", np)
	}
	db := find[networkingv1.NetworkPolicy](t, r, "NetworkPolicy", d.Namespace, "birthday-db")
	if db == nil || len(db.Spec.Ingress) != 1 || len(db.Spec.Ingress[0].From) != 1 {
		t.Fatalf("NetworkPolicy birthday-db = %+v, want one rule admitting the app", db)
	}
	from := db.Spec.Ingress[0].From[0]
	if from.NamespaceSelector != nil || from.PodSelector == nil || !labels.SelectorFromSet(from.PodSelector.MatchLabels).Matches(app) || len(from.PodSelector.MatchLabels) == 0 {
		t.Errorf("the database admits %+v, want the app's pods only", from)
	}
	egress := find[networkingv1.NetworkPolicy](t, r, "NetworkPolicy", d.Namespace, "birthday-app-egress")
	if egress == nil || len(egress.Spec.Egress) == 0 || egress.Spec.Egress[0].Ports[0].Port.IntValue() != 5432 {
		t.Errorf("birthday-app-egress = %+v, want the app allowed to its database on 5432", egress)
	}
}

// TestSecretsArePlaceholders: every secret value the manifests generate
// (all keys but a database username) is a placeholder, so a real secret
// never lands in git by way of these files.
func TestSecretsArePlaceholders(t *testing.T) {
	for _, r := range renderAll(t) {
		for _, s := range all[corev1.Secret](t, r, "Secret") {
			if len(s.Data) == 0 {
				t.Errorf("%s: Secret %s is empty", r.name, s.Name)
			}
			for k, v := range s.Data {
				if k == "username" {
					continue
				}
				if k == ".dockerconfigjson" {
					v = []byte(decodeDockerAuth(t, v))
				}
				if !strings.Contains(string(v), "REPLACE-ME") {
					t.Errorf("%s: Secret %s key %s is not a REPLACE-ME placeholder", r.name, s.Name, k)
				}
			}
		}
	}
}

// decodeDockerAuth returns the base64 "auth" fields of a docker config,
// decoded and joined.
func decodeDockerAuth(t *testing.T, b []byte) string {
	t.Helper()
	var cfg struct {
		Auths map[string]struct{ Auth string }
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf(".dockerconfigjson: %v", err)
	}
	var out []string
	for _, a := range cfg.Auths {
		dec, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			t.Fatalf(".dockerconfigjson auth: %v", err)
		}
		out = append(out, string(dec))
	}
	return strings.Join(out, "\n")
}

// TestFerryConfig parses the ferry.yaml that the ferry ConfigMap carries with
// ferry's own parser, and checks that it, the ferry Deployment, the Roles and
// the birthday-app overlays agree on every name.
func TestFerryConfig(t *testing.T) {
	rs := renderAll(t)
	fr := rs["ferry"]
	d := find[appsv1.Deployment](t, fr, "Deployment", "ferry", "ferry")
	if d == nil {
		t.Fatal("no Deployment ferry in namespace ferry")
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"serve", "-c", "/etc/ferry/ferry.yaml"}) {
		t.Errorf("ferry args %q, want serve -c /etc/ferry/ferry.yaml", c.Args)
	}
	if !strings.HasPrefix(c.Image, "ghcr.io/ferryhq/ferry") {
		t.Errorf("ferry image %q", c.Image)
	}
	for _, p := range []struct {
		name, path string
		probe      *corev1.Probe
	}{
		{"liveness", "/healthz", c.LivenessProbe},
		{"startup", "/healthz", c.StartupProbe},
		// Readiness that knows the leader from the standby (server/ready.go).
		{"readiness", "/readyz", c.ReadinessProbe},
	} {
		if pr := p.probe; pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != p.path || pr.HTTPGet.Port.String() != "http" {
			t.Errorf("ferry %s probe %+v, want GET %s on http", p.name, pr, p.path)
		}
	}
	// A drain evicts one server at a time.
	var pdb *policyv1.PodDisruptionBudget
	for _, b := range all[policyv1.PodDisruptionBudget](t, fr, "PodDisruptionBudget") {
		if b.Namespace == d.Namespace && b.Spec.Selector != nil && labels.Equals(b.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
			pdb = b
		}
	}
	if pdb == nil || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("ferry's PodDisruptionBudget %+v, want minAvailable 1 selecting the Deployment's pods", pdb)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("ferry ports %+v, want 8080", c.Ports)
	}
	cmName := ""
	mounts := map[string]string{} // mount path → volume name
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == mounts["/etc/ferry"] && v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	cm := find[corev1.ConfigMap](t, fr, "ConfigMap", "ferry", cmName)
	if cm == nil {
		t.Fatalf("no ConfigMap mounted at /etc/ferry (volume %q, ConfigMap %q)", mounts["/etc/ferry"], cmName)
	}
	data, ok := cm.Data["ferry.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no ferry.yaml", cm.Name)
	}
	if !strings.Contains(data, "key: "+keyPath) || mounts[path.Dir(keyPath)] == "" {
		t.Errorf("ferry.yaml does not sign with the key mounted at %s (mounts %v)", keyPath, mounts)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == mounts[path.Dir(keyPath)] && (v.Secret == nil || find[corev1.Secret](t, fr, "Secret", "ferry", v.Secret.SecretName) == nil) {
			t.Errorf("the signing key's volume %s is not a Secret of the render", v.Name)
		}
	}
	cfg, err := parseFerryYAML(t, data)
	if err != nil {
		t.Fatalf("ferry's parser refuses the ConfigMap's ferry.yaml:\n%v", err)
	}
	if gaps := cfg.RedundancyGaps(); len(gaps) > 0 {
		t.Errorf("ferry.yaml cannot run two servers: %v", gaps)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("ferry Deployment replicas %v, want 2 (one leads, one stands by)", d.Spec.Replicas)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("ferry.yaml warnings: %v", cfg.Warnings)
	}
	if cfg.Ledger.Engine != "postgres" {
		t.Errorf("ledger %s, want PostgreSQL", cfg.Ledger.URL)
	}
	// The whole DSN is the Secret's: ferry.yaml's URL names nothing, and
	// pgx takes every part from libpq's environment variables.
	if cfg.Ledger.URL != "postgres://" {
		t.Errorf("ledger URL %q, want postgres:// (host, database, user and password from the ferry-ledger Secret)", cfg.Ledger.URL)
	}
	if cfg.RegistryEmbedded() {
		t.Error("ferry.yaml uses the embedded registry, want an external one")
	}
	if !strings.HasSuffix(cfg.DataDir, "/data") || !strings.HasPrefix(cfg.DataDir, "/var/lib/ferry") || mounts["/var/lib/ferry"] == "" {
		t.Errorf("dataDir %s is not on the pod's data volume (mounts %v)", cfg.DataDir, mounts)
	}

	// Every secret the configuration refers to is set from a Secret.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	fromSecret := map[string]bool{} // envFrom: every key of the Secret, as is
	for _, from := range c.EnvFrom {
		if from.SecretRef == nil || from.Prefix != "" {
			t.Errorf("ferry's envFrom %+v: want a Secret without prefix", from)
			continue
		}
		sec := find[corev1.Secret](t, fr, "Secret", "ferry", from.SecretRef.Name)
		if sec == nil {
			t.Errorf("ferry's envFrom reads Secret %s, which the render lacks", from.SecretRef.Name)
			continue
		}
		for k := range sec.Data {
			fromSecret[k] = true
		}
	}
	for _, name := range []string{"PGHOST", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE"} {
		if _, set := env[name]; set || !fromSecret[name] {
			t.Errorf("ferry's %s is not set from a Secret's envFrom (env %v, envFrom keys %v)", name, env[name], fromSecret)
		}
	}
	var needs []string
	if cfg.Source.WebhookSecret.Env != "" {
		needs = append(needs, cfg.Source.WebhookSecret.Env)
	}
	for _, name := range needs {
		e, ok := env[name]
		if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("ferry's %s is not set from a Secret", name)
			continue
		}
		sec := find[corev1.Secret](t, fr, "Secret", "ferry", e.ValueFrom.SecretKeyRef.Name)
		if sec == nil || sec.Data[e.ValueFrom.SecretKeyRef.Key] == nil {
			t.Errorf("ferry's %s reads %s/%s, which the render lacks", name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
		}
	}

	sa := d.Spec.Template.Spec.ServiceAccountName
	if find[corev1.ServiceAccount](t, fr, "ServiceAccount", "ferry", sa) == nil {
		t.Errorf("ferry runs as ServiceAccount %q, which the render lacks", sa)
	}
	var kubeNamespaces []string
	for _, e := range cfg.Environments {
		k := e.Runtime.Kubernetes
		if k == nil {
			t.Errorf("environment %s does not use the kubernetes runtime", e.Name)
			continue
		}
		kubeNamespaces = append(kubeNamespaces, k.Namespace)
		if k.Namespace != e.Name || k.Deployment != "birthday-app" || k.Container != "app" || k.HPA != "birthday-app" || k.Kubeconfig != "" {
			t.Errorf("environment %s runtime %+v, want namespace %s, deployment birthday-app, container app, hpa birthday-app, in-cluster", e.Name, k, e.Name)
		}
		// The overlay that owns this namespace has what ferry will patch.
		var overlay *rendered
		for _, r := range rs {
			if find[corev1.Namespace](t, r, "Namespace", "", k.Namespace) != nil && r.name != "ferry" {
				overlay = r
			}
		}
		if overlay == nil {
			t.Errorf("environment %s: no overlay creates namespace %s", e.Name, k.Namespace)
			continue
		}
		app := find[appsv1.Deployment](t, overlay, "Deployment", k.Namespace, k.Deployment)
		if app == nil || !slices.ContainsFunc(app.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == k.Container }) {
			t.Errorf("environment %s: overlay %s has no Deployment %s with container %s", e.Name, overlay.name, k.Deployment, k.Container)
		}
		if find[autoscalingv2.HorizontalPodAutoscaler](t, overlay, "HorizontalPodAutoscaler", k.Namespace, k.HPA) == nil {
			t.Errorf("environment %s: overlay %s has no HPA %s", e.Name, overlay.name, k.HPA)
		}
		// A Role there grants the names ferry.yaml uses, bound to ferry's
		// ServiceAccount.
		role := find[rbacv1.Role](t, fr, "Role", k.Namespace, "ferry")
		if role == nil {
			t.Errorf("environment %s: no Role ferry in namespace %s", e.Name, k.Namespace)
			continue
		}
		for _, want := range []struct{ group, resource, name string }{
			{"apps", "deployments", k.Deployment},
			{"apps", "deployments/scale", k.Deployment},
			{"autoscaling", "horizontalpodautoscalers", k.HPA},
			// A canary's Deployments beside it (runtime/kube's split).
			{"apps", "deployments", k.Deployment + "-canary"},
			{"apps", "deployments", k.Deployment + "-baseline"},
			{"apps", "deployments/scale", k.Deployment + "-canary"},
			{"apps", "deployments/scale", k.Deployment + "-baseline"},
		} {
			if !slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
				return slices.Contains(r.APIGroups, want.group) && slices.Contains(r.Resources, want.resource) &&
					(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, want.name))
			}) {
				t.Errorf("Role %s/ferry grants nothing on %s %s", k.Namespace, want.resource, want.name)
			}
		}
		rb := find[rbacv1.RoleBinding](t, fr, "RoleBinding", k.Namespace, "ferry")
		if rb == nil || rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 ||
			rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != sa || rb.Subjects[0].Namespace != d.Namespace {
			t.Errorf("RoleBinding %s/ferry = %+v, want Role ferry bound to ServiceAccount %s/%s", k.Namespace, rb, d.Namespace, sa)
		}
	}
	// Roles exist where ferry.yaml deploys, and nowhere else.
	for _, role := range all[rbacv1.Role](t, fr, "Role") {
		if !slices.Contains(kubeNamespaces, role.Namespace) {
			t.Errorf("Role %s/%s grants rights in a namespace ferry.yaml does not deploy to", role.Namespace, role.Name)
		}
	}

	// The file beside the kustomization is what the ConfigMap carries.
	onDisk, err := os.ReadFile(filepath.Join("ferry", "ferry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != data {
		t.Error("the ConfigMap's ferry.yaml differs from deploy/ferry/ferry.yaml")
	}
}

// lineDiff is a small line diff (longest common subsequence), enough to
// show how a render moved away from its golden file.
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	n, m := len(x), len(y)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	shown := 0
	for i, j := 0, 0; (i < n || j < m) && shown < 80; {
		switch {
		case i < n && j < m && x[i] == y[j]:
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&out, "%4d -%s\n", i+1, x[i])
			i++
			shown++
		default:
			fmt.Fprintf(&out, "%4d +%s\n", j+1, y[j])
			j++
			shown++
		}
	}
	if shown == 80 {
		out.WriteString("…\n")
	}
	return out.String()
}

func TestLineDiff(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"a\nb\nc", "a\nb\nc", ""},
		{"a\nb\nc", "a\nx\nc", "   2 -b\n   2 +x\n"},
		{"a\nc", "a\nb\nc", "   2 +b\n"},
		{"a\nb\nc", "a\nc", "   2 -b\n"},
	} {
		if got := lineDiff(tc.a, tc.b); got != tc.want {
			t.Errorf("lineDiff(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}

// keyPath is where ferry's Deployment mounts the signing key.
const keyPath = "/etc/ferry-secrets/signing/signing.key"

// parseFerryYAML parses ferry.yaml with ferry's own parser. The signing key
// is a mounted Secret: a key of the test's stands in for it.
func parseFerryYAML(t *testing.T, data string) (*config.Config, error) {
	t.Helper()
	dir := t.TempDir()
	if _, err := cosign.LoadOrCreateKey(dir); err != nil {
		t.Fatal(err)
	}
	return config.Parse("ferry.yaml", []byte(strings.Replace(data, keyPath, filepath.Join(dir, cosign.PrivateKeyFile), 1)))
}
