package kube

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// TestAPIRequests checks, against an HTTP server answering JSON the way the
// API server does, that the runtime's own clients send the requests the
// full clientset sent (paths, verbs, parameters) and decode the answers.
func TestAPIRequests(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		p := r.URL.Path
		switch {
		case strings.HasSuffix(p, "/log"):
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "line 1\n")
		case strings.HasSuffix(p, "/scale"):
			io.WriteString(w, `{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"app"},"spec":{"replicas":3}}`)
		case strings.Contains(p, "/deployments"):
			io.WriteString(w, `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"app","namespace":"ns","resourceVersion":"7"}}`)
		case strings.HasSuffix(p, "/replicasets"):
			io.WriteString(w, `{"kind":"ReplicaSetList","apiVersion":"apps/v1","metadata":{},"items":[{"metadata":{"name":"rs"}}]}`)
		case strings.HasSuffix(p, "/pods"):
			io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"p"}}]}`)
		case strings.Contains(p, "/horizontalpodautoscalers"):
			io.WriteString(w, `{"kind":"HorizontalPodAutoscaler","apiVersion":"autoscaling/v2","metadata":{"name":"h"},"spec":{"maxReplicas":5}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	a, err := newAPI(&rest.Config{Host: srv.URL, QPS: 20, Burst: 40})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := a.deployments("ns").Get(ctx, "app", metav1.GetOptions{})
	if err != nil || d.Name != "app" || d.ResourceVersion != "7" {
		t.Fatalf("get deployment = %+v, %v", d.ObjectMeta, err)
	}
	opts := metav1.PatchOptions{FieldManager: "ferry"}
	if _, err := a.deployments("ns").Patch(ctx, "app", types.StrategicMergePatchType, []byte(`{}`), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := a.deployments("ns").Patch(ctx, "app", types.MergePatchType, []byte(`{}`), opts, "scale"); err != nil {
		t.Fatalf("patch deployments/scale: %v", err)
	}
	if rs, err := a.replicaSets("ns").List(ctx, metav1.ListOptions{LabelSelector: "app=x"}); err != nil || len(rs.Items) != 1 {
		t.Fatalf("list replicasets = %v, %v", rs, err)
	}
	if ps, err := a.pods("ns").List(ctx, metav1.ListOptions{LabelSelector: "app=x"}); err != nil || len(ps.Items) != 1 || ps.ResourceVersion != "9" {
		t.Fatalf("list pods = %v, %v", ps, err)
	}
	rc, err := a.podLogs("ns", "p", &corev1.PodLogOptions{Container: "app", Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rc); string(b) != "line 1\n" {
		t.Errorf("pod log = %q", b)
	}
	rc.Close()
	if h, err := a.hpas("ns").Get(ctx, "h", metav1.GetOptions{}); err != nil || h.Spec.MaxReplicas != 5 {
		t.Fatalf("get hpa = %v, %v", h, err)
	}
	want := []string{
		"GET /apis/apps/v1/namespaces/ns/deployments/app",
		"PATCH /apis/apps/v1/namespaces/ns/deployments/app?fieldManager=ferry",
		"PATCH /apis/apps/v1/namespaces/ns/deployments/app/scale?fieldManager=ferry",
		"GET /apis/apps/v1/namespaces/ns/replicasets?labelSelector=app%3Dx",
		"GET /api/v1/namespaces/ns/pods?labelSelector=app%3Dx",
		"GET /api/v1/namespaces/ns/pods/p/log?container=app&follow=true",
		"GET /apis/autoscaling/v2/namespaces/ns/horizontalpodautoscalers/h",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
