package kube

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/kubetest"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestRBAC runs the runtime as a user holding only the Role the package
// comment documents, then the same Role without watch, where rollouts are
// followed by polling.
func TestRBAC(t *testing.T) {
	t.Parallel()
	rules := func(watch bool) []rbacv1.PolicyRule {
		read := []string{"get", "patch"}
		pods := []string{"list"}
		if watch {
			read = append(read, "watch")
			pods = append(pods, "watch")
		}
		return []rbacv1.PolicyRule{
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: read},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"patch"}},
			{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"list"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: pods},
			{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		}
	}
	for _, watch := range []bool{true, false} {
		name := "watch"
		if !watch {
			name = "poll"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := testCluster(t)
			ns := c.namespace()
			c.create(testDeployment(ns, spec(newDigest(), 1, 2)))
			ctx := context.Background()
			kt, err := NewForConfig(Config{Env: "test", Namespace: ns, Deployment: "app", Poll: 100 * time.Millisecond}, c.as(ns, rules(watch)))
			if err != nil {
				t.Fatal(err)
			}

			next := spec(newDigest(), 2, 3)
			var log progressLog
			if err := kt.Apply(ctx, next, log.add); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if ps := log.all(); len(ps) < 2 || ps[len(ps)-1].Ready != 3 || ps[len(ps)-1].Updated != 3 {
				t.Errorf("progress = %+v, want several reports ending with 3 ready, 3 updated", ps)
			}
			st, err := kt.Status(ctx)
			if err != nil || st.Digest != next.Digest || st.Ready != 3 {
				t.Errorf("Status = %+v, %v; want 3 ready of %s", st, err, next.Digest)
			}
			if err := kt.Scale(ctx, 1); err != nil {
				t.Fatalf("Scale: %v", err)
			}
			if st, err := kt.Status(ctx); err != nil || st.Ready != 1 || len(st.Replicas) != 1 {
				t.Errorf("Status after Scale(1) = %+v, %v", st, err)
			}
			err = kt.Logs(ctx, &bytes.Buffer{}, 5, false)
			if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "did not serve logs") {
				t.Errorf("Logs = %v, want the cluster's failure to serve them, not a refusal", err)
			}
		})
	}
}

// as is a client configuration for a new user holding only a Role of
// rules in ns, once the authorizer lets it get the Deployment "app".
func (c *cluster) as(ns string, rules []rbacv1.PolicyRule) *rest.Config {
	c.t.Helper()
	ctx := context.Background()
	user := "ferry-deployer-" + randHex(4)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "ferry", Namespace: ns}, Rules: rules}
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ferry", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "ferry"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	rc := rest.CopyConfig(c.Config)
	rc.Impersonate = rest.ImpersonationConfig{UserName: user}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		c.t.Fatal(err)
	}
	// RBAC takes effect through the authorizer's cache: wait for it.
	c.eventually(10*time.Second, func() (bool, string) {
		_, err := cs.AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
		return err == nil, "get as " + user + ": " + errString(err)
	})
	return rc
}

// TestApplyConflict changes the image under a rollout, as another client
// would: Apply stops following and says so.
func TestApplyConflict(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	c.create(testDeployment(ns, spec(newDigest(), 1, 2)))
	bad := spec(newDigest(), 2, 2)
	c.brokenDigest(ns, bad.Digest, kubetest.NotReady)
	kt := c.target(ns)
	ctx := context.Background()

	other := testImage + "@" + newDigest()
	go func() {
		// Once Apply has patched its digest in, another client changes
		// the image under the rollout. (No t.Fatal off the test's
		// goroutine: if the digest never shows, Apply's error says so.)
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
			if err == nil && strings.HasSuffix(d.Spec.Template.Spec.Containers[0].Image, "@"+bad.Digest) {
				break
			}
		}
		patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"` + other + `"}]}}}}`)
		c.Client.AppsV1().Deployments(ns).Patch(ctx, "app", "application/strategic-merge-patch+json", patch, metav1.PatchOptions{})
	}()
	start := time.Now()
	err := kt.Apply(ctx, bad, nil)
	want := "deployment app in namespace " + ns + " was changed meanwhile: container app now runs " + other
	if ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(err.Error(), want) {
		t.Errorf("Apply with the image changed under it = %v, want %s: %s", err, ferry.ECONFLICT, want)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Apply noticed the change after %s", took)
	}
}
