package kube

import (
	"fmt"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// api holds the typed clients of the resources the runtime uses. They are
// client-go's generated clients (gentype) over a scheme of only the API
// groups ferry touches, built here: the full clientset,
// k8s.io/client-go/kubernetes, registers every group of Kubernetes in its
// scheme at package init, which every start of the ferry binary paid, CLI
// commands included (6 ms of `ferry version`). The requests are the same
// as the clientset's: same paths, parameters, protobuf preference and one
// rate limiter for all.
type api struct {
	apps, core, autoscaling rest.Interface
	params                  runtime.ParameterCodec
	http                    *http.Client // shared by the three
}

// newAPI makes the clients for rc.
func newAPI(rc *rest.Config) (*api, error) {
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	// autoscaling/v1 is the deployments/scale subresource's kind.
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, autoscalingv1.AddToScheme, autoscalingv2.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("kubernetes scheme: %w", err)
		}
	}
	codecs := serializer.NewCodecFactory(scheme)
	cfg := *rc
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		if cfg.Burst <= 0 {
			return nil, fmt.Errorf("kubernetes client: burst must be positive when QPS is set")
		}
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	hc, err := rest.HTTPClientFor(&cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	client := func(gv schema.GroupVersion, path string) (rest.Interface, error) {
		c := cfg
		c.GroupVersion, c.APIPath = &gv, path
		c.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(scheme, codecs).WithoutConversion()
		rc, err := rest.RESTClientForConfigAndClient(&c, hc)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client %s: %w", gv, err)
		}
		return rc, nil
	}
	a := &api{params: runtime.NewParameterCodec(scheme), http: hc}
	if a.apps, err = client(appsv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if a.core, err = client(corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if a.autoscaling, err = client(autoscalingv2.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *api) deployments(ns string) *gentype.ClientWithList[*appsv1.Deployment, *appsv1.DeploymentList] {
	return gentype.NewClientWithList("deployments", a.apps, a.params, ns,
		func() *appsv1.Deployment { return &appsv1.Deployment{} },
		func() *appsv1.DeploymentList { return &appsv1.DeploymentList{} },
		gentype.PrefersProtobuf[*appsv1.Deployment]())
}

func (a *api) replicaSets(ns string) *gentype.ClientWithList[*appsv1.ReplicaSet, *appsv1.ReplicaSetList] {
	return gentype.NewClientWithList("replicasets", a.apps, a.params, ns,
		func() *appsv1.ReplicaSet { return &appsv1.ReplicaSet{} },
		func() *appsv1.ReplicaSetList { return &appsv1.ReplicaSetList{} },
		gentype.PrefersProtobuf[*appsv1.ReplicaSet]())
}

func (a *api) pods(ns string) *gentype.ClientWithList[*corev1.Pod, *corev1.PodList] {
	return gentype.NewClientWithList("pods", a.core, a.params, ns,
		func() *corev1.Pod { return &corev1.Pod{} },
		func() *corev1.PodList { return &corev1.PodList{} },
		gentype.PrefersProtobuf[*corev1.Pod]())
}

// podLogs is the clientset's Pods(ns).GetLogs(pod, opts).
func (a *api) podLogs(ns, pod string, opts *corev1.PodLogOptions) *rest.Request {
	return a.core.Get().Namespace(ns).Name(pod).Resource("pods").SubResource("log").VersionedParams(opts, a.params)
}

func (a *api) hpas(ns string) *gentype.ClientWithList[*autoscalingv2.HorizontalPodAutoscaler, *autoscalingv2.HorizontalPodAutoscalerList] {
	return gentype.NewClientWithList("horizontalpodautoscalers", a.autoscaling, a.params, ns,
		func() *autoscalingv2.HorizontalPodAutoscaler { return &autoscalingv2.HorizontalPodAutoscaler{} },
		func() *autoscalingv2.HorizontalPodAutoscalerList { return &autoscalingv2.HorizontalPodAutoscalerList{} },
		gentype.PrefersProtobuf[*autoscalingv2.HorizontalPodAutoscaler]())
}
