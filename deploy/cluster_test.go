package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/kubetest"
	kubetarget "github.com/ferryhq/ferry/runtime/kube"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// kube is a test's handle on the real control plane FERRY_TEST_KUBECONFIG
// points at (kube-apiserver with RBAC and pod security admission, the
// controller manager, the scheduler, kwok's fake nodes).
type kube struct {
	*kubetest.Cluster
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// connect fails the test when FERRY_TEST_REQUIRE names kubernetes and the
// control plane is missing or unreachable, and skips it otherwise.
func connect(t *testing.T) *kube {
	t.Helper()
	c := kubetest.Connect(t)
	return &kube{Cluster: c, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))}
}

// apply server-side applies obj as field manager ferry-test, taking over
// conflicting fields, and returns what the API server stored.
func (k *kube) apply(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := obj.GroupVersionKind()
	m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		k.mapper.Reset() // a type the cached discovery has not seen yet
		m, err = k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = k.Dynamic.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			return nil, fmt.Errorf("%s %s: namespaced, but no namespace", gvk.Kind, obj.GetName())
		}
		ri = k.Dynamic.Resource(m.Resource).Namespace(obj.GetNamespace())
	}
	got, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "ferry-test", Force: true})
	if err != nil {
		return nil, err
	}
	// Read it back: the object is stored, not merely accepted.
	back, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get after apply: %w", err)
	}
	if back.GetUID() == "" || back.GetUID() != got.GetUID() {
		return nil, fmt.Errorf("get after apply: uid %q, apply returned %q", back.GetUID(), got.GetUID())
	}
	return back, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// relocate moves rendered objects from the namespaces the manifests name
// (the keys of to) into the test's own namespaces, consistently: objects'
// namespaces, Namespace objects, RoleBinding subjects, namespace selectors
// by name, and the namespaces in YAML documents that ConfigMaps carry
// (ferry.yaml). It then checks that no field called namespace still names
// an old one.
func relocate(objs []*unstructured.Unstructured, to map[string]string) error {
	for _, o := range objs {
		if n, ok := to[o.GetNamespace()]; ok {
			o.SetNamespace(n)
		}
		switch o.GetKind() {
		case "Namespace":
			if n, ok := to[o.GetName()]; ok {
				o.SetName(n)
			}
			l := o.GetLabels()
			if l == nil {
				l = map[string]string{}
			}
			l["ferry.test/package"] = "deploy"
			o.SetLabels(l)
		case "ConfigMap":
			data, _, err := unstructured.NestedStringMap(o.Object, "data")
			if err != nil {
				return fmt.Errorf("ConfigMap %s: %w", o.GetName(), err)
			}
			for k, v := range data {
				if !strings.HasSuffix(k, ".yaml") {
					continue
				}
				nv, err := relocateYAML(v, to)
				if err != nil {
					return fmt.Errorf("ConfigMap %s key %s: %w", o.GetName(), k, err)
				}
				data[k] = nv
			}
			if err := unstructured.SetNestedStringMap(o.Object, data, "data"); err != nil {
				return err
			}
		}
		o.Object = relocateTree(o.Object, to).(map[string]any)
	}
	for _, o := range objs {
		if path := leftover(o.Object, to, ""); path != "" {
			return fmt.Errorf("%s %s: %s still names an old namespace", o.GetKind(), o.GetName(), path)
		}
	}
	return nil
}

// relocateTree rewrites subjects' namespaces (RoleBindings) and
// namespaceSelectors that match a namespace by name (NetworkPolicies).
func relocateTree(v any, to map[string]string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "namespaceSelector" {
				if ml, ok := x.(map[string]any)["matchLabels"].(map[string]any); ok {
					if n, ok := ml["kubernetes.io/metadata.name"].(string); ok && to[n] != "" {
						ml["kubernetes.io/metadata.name"] = to[n]
					}
				}
			}
			if k == "subjects" {
				for _, s := range x.([]any) {
					s := s.(map[string]any)
					if n, ok := s["namespace"].(string); ok && to[n] != "" {
						s["namespace"] = to[n]
					}
				}
			}
			v[k] = relocateTree(x, to)
		}
	case []any:
		for i, x := range v {
			v[i] = relocateTree(x, to)
		}
	}
	return v
}

// relocateYAML rewrites every `namespace:` value of a YAML document.
func relocateYAML(doc string, to map[string]string) (string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		return "", err
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "namespace" && v.Kind == yaml.ScalarNode && to[v.Value] != "" {
					v.Value = to[v.Value]
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	out, err := yaml.Marshal(&root)
	return string(out), err
}

// leftover returns the path of a field named namespace (or a namespace
// selector by name) whose value is still one of to's keys, or "".
func leftover(v any, to map[string]string, path string) string {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := path + "." + k
			if s, ok := x.(string); ok && (k == "namespace" || k == "kubernetes.io/metadata.name") && to[s] != "" {
				return p
			}
			if s, ok := x.(string); ok && strings.HasSuffix(k, ".yaml") && strings.Contains(p, ".data.") {
				var doc any
				if yaml.Unmarshal([]byte(s), &doc) == nil {
					if l := leftover(normalize(doc), to, p); l != "" {
						return l
					}
				}
			}
			if l := leftover(x, to, p); l != "" {
				return l
			}
		}
	case []any:
		for i, x := range v {
			if l := leftover(x, to, fmt.Sprintf("%s[%d]", path, i)); l != "" {
				return l
			}
		}
	}
	return ""
}

// normalize turns yaml.v3's map[string]any documents into the same shape
// as unstructured's (it already is; this guards map[any]any).
func normalize(v any) any {
	switch v := v.(type) {
	case map[any]any:
		m := map[string]any{}
		for k, x := range v {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case map[string]any:
		for k, x := range v {
			v[k] = normalize(x)
		}
	case []any:
		for i, x := range v {
			v[i] = normalize(x)
		}
	}
	return v
}

func TestRelocate(t *testing.T) {
	objs := renderObjects(t, "ferry")
	to := map[string]string{"dev": "t-dev", "prod": "t-prod", "ferry": "t-ferry"}
	if err := relocate(objs, to); err != nil {
		t.Fatal(err)
	}
	var cm *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			cm = o
		}
		if slices.Contains([]string{"dev", "prod", "ferry"}, o.GetNamespace()) {
			t.Errorf("%s %s stays in namespace %s", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "ferry.yaml")
	cfg, err := parseFerryYAML(t, data)
	if err != nil {
		t.Fatalf("relocated ferry.yaml: %v", err)
	}
	for _, e := range cfg.Environments {
		if got := e.Runtime.Kubernetes.Namespace; got != to[e.Name] {
			t.Errorf("relocated environment %s deploys to namespace %s, want %s", e.Name, got, to[e.Name])
		}
	}
	// Any YAML a ConfigMap carries is rewritten, wherever its namespace
	// fields sit.
	other := []*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x", "namespace": "ferry"},
		"data": map[string]any{"note.yaml": "runtime:\n  other:\n    namespace: dev\n", "note.txt": "namespace: dev"},
	}}}
	if err := relocate(other, to); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedString(other[0].Object, "data", "note.yaml"); !strings.Contains(got, "namespace: t-dev") {
		t.Errorf("relocated note.yaml = %q, want namespace: t-dev", got)
	}
	// What relocate could not rewrite is reported.
	if l := leftover(map[string]any{"subjects": []any{map[string]any{"namespace": "dev"}}}, to, ""); l != ".subjects[0].namespace" {
		t.Errorf("leftover(a subject in dev) = %q, want .subjects[0].namespace", l)
	}
}

// TestCluster applies every rendered object — birthday-app's dev and prod
// overlays and ferry — with server-side apply to a real API server, into
// namespaces of its own; waits until kwok has made the Deployments
// available; then asks the API server what ferry's ServiceAccount may do
// (SubjectAccessReviews) and makes calls as that ServiceAccount.
func TestCluster(t *testing.T) {
	k := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	base := "deploy-" + randHex(4)
	ns := map[string]string{"dev": base + "-dev", "prod": base + "-prod", "ferry": base + "-ferry"}
	neighbour := k.Namespace(base + "-neighbour")
	for _, n := range []string{ns["dev"], ns["prod"], ns["ferry"]} {
		t.Cleanup(func() {
			err := k.Client.CoreV1().Namespaces().Delete(context.Background(), n, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete namespace %s: %v", n, err)
			}
		})
	}

	// The overlays first: deploy/ferry's Roles live in their namespaces.
	kinds := map[string]int{}
	for _, r := range renders {
		objs := renderObjects(t, r.dir)
		if err := relocate(objs, ns); err != nil {
			t.Fatalf("relocate %s: %v", r.name, err)
		}
		for _, o := range objs {
			got, err := k.apply(ctx, o)
			if err != nil {
				t.Fatalf("%s: server-side apply %s %s/%s: %v", r.name, o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
			if got.GetNamespace() != o.GetNamespace() || got.GetName() != o.GetName() {
				t.Errorf("%s: applied %s %s/%s, stored as %s/%s", r.name, o.GetKind(), o.GetNamespace(), o.GetName(), got.GetNamespace(), got.GetName())
			}
			kinds[o.GetKind()]++
		}
	}
	t.Logf("applied %v", kinds)

	// kwok runs no containers but plays the kubelet: the scheduler places
	// the pods (admitted under the restricted pod security standard) and
	// kwok marks them ready. The HPA raises each Deployment to its minimum.
	for _, env := range []string{"dev", "prod"} {
		hpa, err := k.Client.AutoscalingV2().HorizontalPodAutoscalers(ns[env]).Get(ctx, "birthday-app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		k.waitAvailable(ctx, t, ns[env], "birthday-app", *hpa.Spec.MinReplicas)
		// The database's pod exists (it waits for a volume: this cluster
		// has no storage provisioner), so pod security admitted it.
		k.waitFor(ctx, t, "pod "+ns[env]+"/birthday-db-0", func() (bool, string) {
			p, err := k.Client.CoreV1().Pods(ns[env]).Get(ctx, "birthday-db-0", metav1.GetOptions{})
			if err != nil {
				return false, err.Error() + "; events: " + k.events(ctx, ns[env])
			}
			return true, string(p.Status.Phase)
		})
		if _, err := k.Client.CoreV1().PersistentVolumeClaims(ns[env]).Get(ctx, "data-birthday-db-0", metav1.GetOptions{}); err != nil {
			t.Errorf("the database's volume claim: %v", err)
		}
	}
	k.waitAvailable(ctx, t, ns["ferry"], "ferry", 2)

	sa := "system:serviceaccount:" + ns["ferry"] + ":ferry"
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns["ferry"], "system:authenticated"}
	t.Run("SubjectAccessReview", func(t *testing.T) {
		type check struct {
			ns, group, resource, sub, name, verb string
			allowed                              bool
		}
		var checks []check
		// What the kube runtime does, in each environment's namespace.
		for _, env := range []string{"dev", "prod"} {
			n := ns[env]
			for _, verb := range []string{"get", "list", "watch", "patch"} {
				checks = append(checks, check{n, "apps", "deployments", "", "birthday-app", verb, true})
			}
			for _, verb := range []string{"get", "update", "patch"} {
				checks = append(checks, check{n, "apps", "deployments", "scale", "birthday-app", verb, true})
			}
			for _, verb := range []string{"get", "list", "watch"} {
				checks = append(checks, check{n, "apps", "replicasets", "", "", verb, true})
				checks = append(checks, check{n, "", "pods", "", "", verb, true})
			}
			checks = append(checks,
				check{n, "", "pods", "log", "birthday-app-0", "get", true},
				check{n, "autoscaling", "horizontalpodautoscalers", "", "birthday-app", "get", true},
				check{n, "autoscaling", "horizontalpodautoscalers", "", "birthday-app", "patch", true},
				// …and nothing else there.
				check{n, "apps", "deployments", "", "", "list", false},
				check{n, "apps", "deployments", "", "another-app", "patch", false},
				// A canary's Deployments: create (which RBAC cannot limit by
				// name), and everything else on those two names only.
				check{n, "apps", "deployments", "", "", "create", true},
				check{n, "apps", "deployments", "", "birthday-app-canary", "delete", true},
				check{n, "apps", "deployments", "", "birthday-app-baseline", "update", true},
				check{n, "apps", "deployments", "scale", "birthday-app-canary", "patch", true},
				check{n, "apps", "deployments", "", "another-app-canary", "delete", false},
				check{n, "apps", "deployments", "", "birthday-app-canary", "list", false},
				check{n, "apps", "deployments", "scale", "another-app", "patch", false},
				check{n, "apps", "deployments", "", "birthday-app", "delete", false},
				check{n, "apps", "deployments", "", "birthday-app", "update", false},
				check{n, "", "secrets", "", "", "list", false},
				check{n, "", "secrets", "", "birthday-db", "get", false},
				check{n, "", "configmaps", "", "", "list", false},
				check{n, "", "pods", "", "", "create", false},
				check{n, "", "pods", "", "birthday-app-0", "delete", false},
				check{n, "", "pods", "exec", "birthday-app-0", "create", false},
				check{n, "", "services", "", "birthday-app", "patch", false},
				check{n, "autoscaling", "horizontalpodautoscalers", "", "birthday-app", "delete", false},
				check{n, "rbac.authorization.k8s.io", "roles", "", "ferry", "patch", false},
				check{n, "rbac.authorization.k8s.io", "rolebindings", "", "", "create", false},
			)
		}
		for _, n := range []string{"default", ns["ferry"], neighbour} {
			checks = append(checks,
				check{n, "apps", "deployments", "", "birthday-app", "patch", false},
				check{n, "apps", "deployments", "", "birthday-app", "get", false},
				check{n, "", "pods", "log", "birthday-app-0", "get", false},
			)
		}
		// Cluster-scoped, or across every namespace.
		checks = append(checks,
			check{"", "", "nodes", "", "", "list", false},
			check{"", "", "namespaces", "", "", "create", false},
			check{"", "", "namespaces", "", "", "list", false},
			check{"", "apps", "deployments", "", "", "list", false},
			check{"", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "create", false},
		)
		for _, c := range checks {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: sa, Groups: groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: c.ns, Group: c.group, Resource: c.resource, Subresource: c.sub, Name: c.name, Verb: c.verb,
				},
			}}
			got, err := k.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			what := c.resource
			if c.sub != "" {
				what += "/" + c.sub
			}
			if c.name != "" {
				what += " " + c.name
			}
			if got.Status.Allowed != c.allowed || got.Status.EvaluationError != "" {
				t.Errorf("may %s %s %s in namespace %q = %v (%s%s), want %v",
					sa, c.verb, what, c.ns, got.Status.Allowed, got.Status.Reason, got.Status.EvaluationError, c.allowed)
			}
		}
		t.Logf("%d access reviews", len(checks))
	})

	t.Run("Impersonated", func(t *testing.T) {
		rc := rest.CopyConfig(k.Config)
		rc.Impersonate = rest.ImpersonationConfig{UserName: sa, Groups: groups}
		as, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		dev, prod := ns["dev"], ns["prod"]

		// What ferry does: read and follow the Deployment by name…
		if _, err := as.AppsV1().Deployments(dev).Get(ctx, "birthday-app", metav1.GetOptions{}); err != nil {
			t.Errorf("get the dev Deployment as ferry: %v", err)
		}
		byName := metav1.ListOptions{FieldSelector: "metadata.name=birthday-app"}
		if l, err := as.AppsV1().Deployments(dev).List(ctx, byName); err != nil {
			t.Errorf("list the dev Deployment by name as ferry: %v", err)
		} else if len(l.Items) != 1 {
			t.Errorf("list the dev Deployment by name as ferry = %d items, want 1", len(l.Items))
		}
		w, err := as.AppsV1().Deployments(dev).Watch(ctx, byName)
		if err != nil {
			t.Errorf("watch the dev Deployment by name as ferry: %v", err)
		} else {
			w.Stop()
		}
		if _, err := as.AppsV1().Deployments(dev).GetScale(ctx, "birthday-app", metav1.GetOptions{}); err != nil {
			t.Errorf("get the dev Deployment's scale as ferry: %v", err)
		}
		d, err := k.Client.AppsV1().Deployments(dev).Get(ctx, "birthday-app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sel := metav1.FormatLabelSelector(d.Spec.Selector)
		if l, err := as.CoreV1().Pods(dev).List(ctx, metav1.ListOptions{LabelSelector: sel}); err != nil {
			t.Errorf("list the dev pods as ferry: %v", err)
		} else if len(l.Items) == 0 {
			t.Error("list the dev pods as ferry found none")
		}
		if _, err := as.AppsV1().ReplicaSets(dev).List(ctx, metav1.ListOptions{LabelSelector: sel}); err != nil {
			t.Errorf("list the dev ReplicaSets as ferry: %v", err)
		}
		// …set the image by digest, and roll out…
		image := "registry.example.com/team/birthday-app@sha256:" + strings.Repeat("ab", 32)
		patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
		got, err := as.AppsV1().Deployments(dev).Patch(ctx, "birthday-app", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "ferry"})
		if err != nil {
			t.Fatalf("patch the dev image as ferry: %v", err)
		}
		if img := got.Spec.Template.Spec.Containers[0].Image; img != image {
			t.Errorf("after ferry's patch the image is %s, want %s", img, image)
		}
		// …and scale through the HPA's bounds.
		h, err := as.AutoscalingV2().HorizontalPodAutoscalers(prod).Patch(ctx, "birthday-app", types.MergePatchType, []byte(`{"spec":{"maxReplicas":8}}`), metav1.PatchOptions{FieldManager: "ferry"})
		if err != nil || h.Spec.MaxReplicas != 8 {
			t.Errorf("patch the prod HPA as ferry = %v, %v; want maxReplicas 8", h, err)
		}

		// Everything else is refused by the API server.
		for _, c := range []struct {
			what string
			call func() error
		}{
			{"list secrets in dev", func() error {
				_, err := as.CoreV1().Secrets(dev).List(ctx, metav1.ListOptions{})
				return err
			}},
			{"list every Deployment in dev", func() error {
				_, err := as.AppsV1().Deployments(dev).List(ctx, metav1.ListOptions{})
				return err
			}},
			{"delete the dev Deployment", func() error {
				return as.AppsV1().Deployments(dev).Delete(ctx, "birthday-app", metav1.DeleteOptions{})
			}},
			{"patch a Deployment in the neighbour namespace", func() error {
				_, err := as.AppsV1().Deployments(neighbour).Patch(ctx, "birthday-app", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
				return err
			}},
			{"read its own Deployment", func() error {
				_, err := as.AppsV1().Deployments(ns["ferry"]).Get(ctx, "ferry", metav1.GetOptions{})
				return err
			}},
			{"list nodes", func() error {
				_, err := as.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
				return err
			}},
			{"create a namespace", func() error {
				_, err := as.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: base + "-forbidden"}}, metav1.CreateOptions{})
				return err
			}},
		} {
			if err := c.call(); !apierrors.IsForbidden(err) {
				t.Errorf("as ferry, %s = %v, want Forbidden", c.what, err)
			}
		}
		if _, err := k.Client.AppsV1().Deployments(dev).Get(ctx, "birthday-app", metav1.GetOptions{}); err != nil {
			t.Errorf("the dev Deployment after a refused delete: %v", err)
		}
		if _, err := k.Client.CoreV1().Namespaces().Get(ctx, base+"-forbidden", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the namespace ferry may not create: %v, want NotFound", err)
			k.Client.CoreV1().Namespaces().Delete(context.Background(), base+"-forbidden", metav1.DeleteOptions{})
		}

		// The rolling update ferry started completes: maxSurge 1,
		// maxUnavailable 0, every replica on the new image.
		k.waitAvailable(ctx, t, dev, "birthday-app", *d.Spec.Replicas)
		pods, err := k.Client.CoreV1().Pods(dev).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image != image {
				t.Errorf("pod %s still runs %s after the rollout", p.Name, p.Spec.Containers[0].Image)
			}
		}

		// ferry's own Kubernetes runtime, as that ServiceAccount, does
		// everything a release needs in prod with these Roles and nothing
		// more: roll out a digest, read what runs, scale through the HPA.
		rt, err := kubetarget.NewForConfig(kubetarget.Config{
			Env: "prod", Namespace: prod, Deployment: "birthday-app", Container: "app", HPA: "birthday-app",
			Poll: 100 * time.Millisecond,
		}, rc)
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close(ctx)
		digest := "sha256:" + strings.Repeat("cd", 32)
		spec := ferry.Spec{
			Env: "prod", Commit: strings.Repeat("c", 40), Image: "registry.example.com/team/birthday-app", Digest: digest,
			Release: "RC20261127_0300", DeploymentID: 7, Rollout: ferry.Rollout{MaxSurge: 1, ReadyTimeout: 30 * time.Second},
		}
		if err := rt.Apply(ctx, spec, nil); err != nil {
			t.Fatalf("the kube runtime as ferry: roll prod to %s: %v", digest, err)
		}
		st, err := rt.Status(ctx)
		if err != nil {
			t.Fatalf("the kube runtime as ferry: status of prod: %v", err)
		}
		if st.Digest != digest || st.Ready < 1 || st.Ready != st.Desired {
			t.Errorf("the kube runtime as ferry: prod runs %q, %d/%d ready; want %s, all ready", st.Digest, st.Ready, st.Desired, digest)
		}
		if err := rt.Scale(ctx, 4); err != nil {
			t.Fatalf("the kube runtime as ferry: scale prod to 4: %v", err)
		}
		h, err = k.Client.AutoscalingV2().HorizontalPodAutoscalers(prod).Get(ctx, "birthday-app", metav1.GetOptions{})
		if err != nil || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 4 {
			t.Errorf("prod's HPA after ferry scale 4 = %v, %v; want minReplicas 4", h, err)
		}
		// …and run a canary beside it: birthday-app-canary and
		// birthday-app-baseline created, scaled and deleted as ferry.
		canary := spec
		canary.Commit, canary.Digest, canary.Release = strings.Repeat("e", 40), "sha256:"+strings.Repeat("ef", 32), "RC20261127_0400"
		if err := rt.Split(ctx, ferry.Split{Stable: spec, Canary: canary, Baseline: true, Weight: 25}, nil); err != nil {
			t.Fatalf("the kube runtime as ferry: a canary beside prod: %v", err)
		}
		for _, name := range []string{"birthday-app-canary", "birthday-app-baseline"} {
			if sd, err := k.Client.AppsV1().Deployments(prod).Get(ctx, name, metav1.GetOptions{}); err != nil || sd.Status.AvailableReplicas < 1 {
				t.Errorf("during the canary, Deployment %s/%s = %v, %v; want it available", prod, name, sd, err)
			}
		}
		if err := rt.EndSplit(ctx); err != nil {
			t.Fatalf("the kube runtime as ferry: end the canary beside prod: %v", err)
		}
		for _, name := range []string{"birthday-app-canary", "birthday-app-baseline"} {
			if _, err := k.Client.AppsV1().Deployments(prod).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("after the canary, Deployment %s/%s: %v, want NotFound", prod, name, err)
			}
		}
		// kwok serves no pod logs; what matters is that RBAC let ferry ask.
		if err := rt.Logs(ctx, io.Discard, 10, false); err != nil && (strings.Contains(err.Error(), "forbidden") || strings.Contains(err.Error(), "does not let ferry")) {
			t.Errorf("the kube runtime as ferry: pod logs refused by RBAC: %v", err)
		}
	})
}

// waitAvailable waits until the Deployment has rolled out want replicas,
// all updated, ready and available, and the pods are Ready.
func (k *kube) waitAvailable(ctx context.Context, t *testing.T, ns, name string, want int32) {
	t.Helper()
	k.waitFor(ctx, t, fmt.Sprintf("Deployment %s/%s available with %d replicas", ns, name, want), func() (bool, string) {
		d, err := k.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s := d.Status
		state := fmt.Sprintf("generation %d observed %d, spec.replicas %v, %d/%d replicas, %d updated, %d ready, %d available; events: %s",
			d.Generation, s.ObservedGeneration, ptrVal(d.Spec.Replicas), s.Replicas, want, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas, k.events(ctx, ns))
		if s.ObservedGeneration < d.Generation || d.Spec.Replicas == nil || *d.Spec.Replicas != want ||
			s.Replicas != want || s.UpdatedReplicas != want || s.ReadyReplicas != want || s.AvailableReplicas != want {
			return false, state
		}
		if !slices.ContainsFunc(s.Conditions, func(c appsv1.DeploymentCondition) bool {
			return c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue
		}) {
			return false, state
		}
		pods, err := k.ReadyPods(ctx, ns, metav1.FormatLabelSelector(d.Spec.Selector))
		if err != nil {
			return false, err.Error()
		}
		return len(pods) == int(want), fmt.Sprintf("%s; %d ready pods", state, len(pods))
	})
	t.Logf("Deployment %s/%s: %d replicas updated, ready and available", ns, name, want)
}

func ptrVal(p *int32) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// waitFor polls cond until it holds, failing the test with cond's last
// word when ctx ends or two minutes pass.
func (k *kube) waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting for %s: %s", what, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// events summarizes the namespace's warning events, for failure messages.
func (k *kube) events(ctx context.Context, ns string) string {
	l, err := k.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range l.Items {
		out = append(out, fmt.Sprintf("%s %s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message))
	}
	if len(out) > 5 {
		out = out[len(out)-5:]
	}
	return "[" + strings.Join(out, "; ") + "]"
}
