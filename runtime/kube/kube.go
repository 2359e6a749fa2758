// Package kube is ferry's Kubernetes runtime (ferry.Runtime): one
// environment is one Deployment in its namespace, created beforehand by the
// user's manifests. Ferry changes only the image of one container, always
// repository@digest, the replica count (or an HorizontalPodAutoscaler's
// bounds), and these annotations, on the Deployment and on its pod
// template alike:
//
//	ferry.dev/commit         the commit built into the image
//	ferry.dev/release        the release tag (absent for dev)
//	ferry.dev/deployment-id  the ledger's deployment that put it there
//	ferry.dev/digest         the image digest
//
// Everything else — probes, resources, the environment of the container,
// Secrets — belongs to the manifests: the spec's variables are not applied
// here. Changes are strategic merge patches, never full updates, so that
// they do not race with an autoscaler or with kubectl.
//
// Apply then follows the Deployment's rollout through its status (a watch,
// with polling every Config.Poll as fallback) until every replica is
// updated and available and no old one is left. It fails when the
// Deployment reports ProgressDeadlineExceeded, when a new pod crash-loops
// or cannot pull its image three times, or when ferry's own deadline
// passes: the spec's ready timeout for each batch of maxSurge new
// replicas, plus 30 s for the controllers to act (see rolloutDeadline).
// Kubernetes keeps the old replicas serving while new ones are not ready
// (with maxUnavailable 0, as the manifests should set); the controller
// reverts by applying the previous spec, which patches the previous digest
// back and follows that rollout.
//
// A canary (Split, EndSplit; see split.go) runs beside the Deployment as
// two more Deployments, <deployment>-canary and <deployment>-baseline,
// whose pods the Service selects too, so that each track's share of the
// requests is its share of the ready pods.
//
// The runtime needs, in the environment's namespace: get, watch and patch
// on deployments; patch on deployments/scale; list on replicasets; list
// and watch on pods; get on pods/log; and, with an HPA, get and patch on
// horizontalpodautoscalers. Without watch it follows rollouts by polling.
// A canary needs as well: create on deployments (which RBAC cannot limit
// by name), and get, watch, update, patch and delete on the canary and
// baseline Deployments, and patch on their deployments/scale. Without
// them the environment releases as before and a Split is refused by the
// cluster, naming what ferry may not do.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Annotations ferry sets on the Deployment and its pod template.
const (
	AnnotationCommit       = "ferry.dev/commit"
	AnnotationRelease      = "ferry.dev/release"
	AnnotationDeploymentID = "ferry.dev/deployment-id"
	AnnotationDigest       = "ferry.dev/digest"
)

// Config configures one environment's Kubernetes runtime.
type Config struct {
	// Env is the ferry environment's name, for messages.
	Env        string
	Namespace  string
	Deployment string
	// Container is the container whose image ferry sets; empty means the
	// Deployment's only container (an error when it has several).
	Container string
	// HPA optionally names an autoscaling/v2 HorizontalPodAutoscaler:
	// Scale then patches its bounds, and Apply leaves the replica count
	// alone.
	HPA string
	// Kubeconfig is the kubeconfig file; when empty, the in-cluster
	// configuration when ferry runs in a pod, else $KUBECONFIG or
	// ~/.kube/config (clientcmd's usual loading rules). Context picks one
	// of the file's contexts instead of its current one.
	Kubeconfig string
	Context    string
	Logger     *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Poll is how often a rollout is checked when watching is not
	// possible, and how often a broken watch is opened again (500 ms when
	// zero).
	Poll time.Duration
}

// Runtime is one environment's Deployment. It keeps no state of the cluster
// between calls: every method reads what the cluster says.
type Runtime struct {
	cfg   Config
	api   *api
	log   *slog.Logger
	now   func() time.Time
	slack time.Duration // added to every rollout deadline

	mu      sync.Mutex
	closed  bool
	rollout ferry.Rollout // of the last Apply, for Scale
}

var _ ferry.Runtime = (*Runtime)(nil)

// rolloutSlack is added to ferry's rollout deadline for the Deployment,
// ReplicaSet and scheduler controllers to act and report.
const rolloutSlack = 30 * time.Second

// New connects to the cluster that cfg names. It does not contact the
// cluster: a missing Deployment shows at the first call.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	rc, err := restConfig(cfg.Kubeconfig, cfg.Context)
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "kubernetes runtime %s: no usable cluster configuration (kubeconfig or in-cluster)", cfg.Env)
	}
	rc.UserAgent = "ferry"
	rc.QPS, rc.Burst = 20, 40
	a, err := newAPI(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes runtime %s: %w", cfg.Env, err)
	}
	t := newTarget(cfg, a)
	t.log.Info("kubernetes runtime ready", "server", rc.Host)
	return t, nil
}

// NewForConfig is New with a client configuration made by the caller, used
// as it is.
func NewForConfig(cfg Config, rc *rest.Config) (*Runtime, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if rc == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "kubernetes runtime %s: no client configuration", cfg.Env)
	}
	a, err := newAPI(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes runtime %s: %w", cfg.Env, err)
	}
	return newTarget(cfg, a), nil
}

func (cfg Config) check() error {
	if cfg.Namespace == "" || cfg.Deployment == "" {
		return ferry.Errorf(ferry.EINVALID, "kubernetes runtime %s: namespace and deployment are required", cfg.Env)
	}
	return nil
}

// newTarget makes the runtime over a (nil in tests of its pure parts).
func newTarget(cfg Config, a *api) *Runtime {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	return &Runtime{
		cfg:   cfg,
		api:   a,
		log:   cfg.Logger.With("env", cfg.Env, "namespace", cfg.Namespace, "deployment", cfg.Deployment),
		now:   cfg.Now,
		slack: rolloutSlack,
	}
}

// restConfig loads the client configuration: in-cluster when neither a
// file nor a context is named and ferry runs in a pod, else the kubeconfig
// file (explicit, or $KUBECONFIG, or ~/.kube/config).
func restConfig(kubeconfig, context string) (*rest.Config, error) {
	if kubeconfig == "" && context == "" {
		rc, err := rest.InClusterConfig()
		if err == nil {
			return rc, nil
		}
		if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, fmt.Errorf("in-cluster configuration: %w", err)
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return rc, nil
}

// Close releases the client's idle connections. The cluster keeps running
// what it runs. Close may be called more than once.
func (t *Runtime) Close(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if t.api != nil {
		t.api.http.CloseIdleConnections()
	}
	return nil
}

// open fails once the runtime is closed.
func (t *Runtime) open(op string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ferry.Errorf(ferry.EUNAVAILABLE, "%s %s: kubernetes runtime closed", op, t.cfg.Env)
	}
	return nil
}

// deployment reads the environment's Deployment.
func (t *Runtime) deployment(ctx context.Context) (*appsv1.Deployment, error) {
	return t.deploymentNamed(ctx, t.cfg.Deployment)
}

// deploymentNamed reads a Deployment of the namespace.
func (t *Runtime) deploymentNamed(ctx context.Context, name string) (*appsv1.Deployment, error) {
	d, err := t.api.deployments(t.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, t.apiError(err, "get", "deployment "+name)
	}
	return d, nil
}

// container finds the index of the container ferry sets in d's pod
// template.
func (t *Runtime) container(d *appsv1.Deployment) (int, error) {
	cs := d.Spec.Template.Spec.Containers
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	if t.cfg.Container == "" {
		if len(cs) == 1 {
			return 0, nil
		}
		return 0, ferry.Errorf(ferry.EINVALID, "deployment %s in namespace %s has %d containers (%s): name the one ferry sets (kubernetes.container)",
			d.Name, d.Namespace, len(cs), strings.Join(names, ", "))
	}
	if i := slices.Index(names, t.cfg.Container); i >= 0 {
		return i, nil
	}
	return 0, ferry.Errorf(ferry.ENOTFOUND, "deployment %s in namespace %s has no container %q (it has %s)",
		d.Name, d.Namespace, t.cfg.Container, strings.Join(names, ", "))
}

// apiError turns an API error about an object into one a user can act on:
// not found, forbidden and unreachable name the namespace and the object.
func (t *Runtime) apiError(err error, verb, object string) error {
	ns := t.cfg.Namespace
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && !apierrors.IsTimeout(err):
		return fmt.Errorf("%s %s in namespace %s: %w", verb, object, ns, err)
	case apierrors.IsNotFound(err):
		return ferry.Errorf(ferry.ENOTFOUND, "%s not found in namespace %s of the cluster (the manifests must create it first)", object, ns)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return ferry.Errorf(ferry.EUNAVAILABLE, "kubernetes does not let ferry %s %s in namespace %s: %s", verb, object, ns, apiMessage(err))
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return ferry.Errorf(ferry.EINVALID, "%s %s in namespace %s: %s", verb, object, ns, apiMessage(err))
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsServiceUnavailable(err),
		apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err), errors.As(err, &netErr):
		return ferry.Wrap(err, ferry.EUNAVAILABLE, "%s %s in namespace %s: kubernetes API unavailable", verb, object, ns)
	}
	return fmt.Errorf("%s %s in namespace %s: %w", verb, object, ns, err)
}

// apiMessage is the API server's message in err.
func apiMessage(err error) string {
	var s apierrors.APIStatus
	if errors.As(err, &s) && s.Status().Message != "" {
		return s.Status().Message
	}
	return err.Error()
}
