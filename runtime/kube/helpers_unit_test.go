package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/replicalog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestDigestOf(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"registry.test/app@sha256:" + hexA, "sha256:" + hexA},
		{"docker-pullable://registry.test/app@sha256:" + hexA, "sha256:" + hexA},
		{"host:5000/team/app:v1@sha256:" + hexA, "sha256:" + hexA},
		{"sha256:" + hexA, ""}, // an image id: the configuration's digest
		{"docker://sha256:" + hexA, ""},
		{"registry.test/app:v1", ""},
		{"registry.test/app@sha256:" + hexA[:60], ""},
		{"registry.test/app@sha256:" + strings.ToUpper(hexA), ""},
		{"", ""},
	} {
		if got := digestOf(tc.ref); got != tc.want {
			t.Errorf("digestOf(%q) = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

func TestPodDigest(t *testing.T) {
	d1, d2, d3 := "sha256:"+hexA, "sha256:"+strings.Repeat("b", 64), "sha256:"+strings.Repeat("c", 64)
	pod := func(spec, image, imageID string) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "side", Image: "side@" + d3}, {Name: "app", Image: spec}}}}
		if image != "" || imageID != "" {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "side", Image: "side@" + d3}, {Name: "app", Image: image, ImageID: imageID}}
		}
		return p
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"status image", pod("app@"+d1, "app@"+d2, "app@"+d3), d2},
		{"image id", pod("app@"+d1, "app:v1", "docker-pullable://app@"+d2), d2},
		{"spec", pod("app@"+d1, "app:v1", "sha256:"+hexA), d1},
		{"not reported yet", pod("app@"+d1, "", ""), d1},
		{"by tag", pod("app:v1", "", ""), ""},
	} {
		if got := podDigest(tc.pod, "app"); got != tc.want {
			t.Errorf("podDigest(%s) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSameImage(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"app@sha256:1", "app@sha256:1", true},
		{"app:v1@sha256:1", "app@sha256:1", true},
		{"host:5000/app:v1@sha256:1", "host:5000/app@sha256:1", true},
		{"host:5000/app@sha256:1", "host:5001/app@sha256:1", false},
		{"app@sha256:1", "app@sha256:2", false},
		{"app:v1", "app:v1", false}, // no digest: cannot know
		{"other@sha256:1", "app@sha256:1", false},
	} {
		if got := sameImage(tc.a, tc.b); got != tc.want {
			t.Errorf("sameImage(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestRolloutDeadline(t *testing.T) {
	for _, tc := range []struct {
		ready          time.Duration
		desired, surge int
		want           time.Duration
	}{
		{time.Minute, 4, 1, 4*time.Minute + rolloutSlack},
		{time.Minute, 4, 2, 2*time.Minute + rolloutSlack},
		{time.Minute, 5, 2, 3*time.Minute + rolloutSlack},
		{time.Minute, 4, 0, 4*time.Minute + rolloutSlack}, // maxSurge 0 rolls one at a time
		{time.Minute, 1, 4, time.Minute + rolloutSlack},
		{time.Minute, 0, 1, rolloutSlack},
		{10 * time.Second, 3, 1, 30*time.Second + rolloutSlack},
	} {
		if got := rolloutDeadline(tc.ready, tc.desired, tc.surge, rolloutSlack); got != tc.want {
			t.Errorf("rolloutDeadline(%s, %d, %d) = %s, want %s", tc.ready, tc.desired, tc.surge, got, tc.want)
		}
	}
}

func TestMaxSurge(t *testing.T) {
	rolling := func(v *intstr.IntOrString) appsv1.DeploymentStrategy {
		return appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: v}}
	}
	for _, tc := range []struct {
		name     string
		strategy appsv1.DeploymentStrategy
		desired  int
		want     int
	}{
		{"int", rolling(new(intstr.FromInt32(2))), 4, 2},
		{"zero", rolling(new(intstr.FromInt32(0))), 4, 0},
		{"percent rounds up", rolling(new(intstr.FromString("30%"))), 4, 2},
		{"unset is 25%", rolling(nil), 10, 3},
		{"no rolling update", appsv1.DeploymentStrategy{}, 4, 1},
		{"recreate", appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}, 4, 4},
		{"bad percent", rolling(new(intstr.FromString("lots"))), 4, 1},
	} {
		d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Strategy: tc.strategy}}
		if got := maxSurge(d, tc.desired); got != tc.want {
			t.Errorf("maxSurge(%s, %d) = %d, want %d", tc.name, tc.desired, got, tc.want)
		}
	}
}

func TestRolloutState(t *testing.T) {
	deadline := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "app-1" has timed out progressing.`}
	quota := appsv1.DeploymentCondition{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "pods exceeded quota"}
	dep := func(gen, observed int64, want int32, st appsv1.DeploymentStatus) *appsv1.Deployment {
		st.ObservedGeneration = observed
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Spec:       appsv1.DeploymentSpec{Replicas: &want, ProgressDeadlineSeconds: new(int32(60))},
			Status:     st,
		}
	}
	full := appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 4, ReadyReplicas: 4, AvailableReplicas: 4}
	for _, tc := range []struct {
		name string
		d    *appsv1.Deployment
		want state
	}{
		{"not observed", dep(3, 2, 4, full), state{msg: "waiting for the deployment controller"}},
		{"complete", dep(3, 3, 4, full), state{observed: true, done: true, msg: "4 of 4 replicas updated and available"}},
		{"complete, stale deadline", dep(3, 3, 4, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 4, ReadyReplicas: 4, AvailableReplicas: 4, Conditions: []appsv1.DeploymentCondition{deadline}}),
			state{observed: true, done: true, msg: "4 of 4 replicas updated and available"}},
		{"updating", dep(3, 3, 4, appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 2, ReadyReplicas: 4, AvailableReplicas: 4}),
			state{observed: true, msg: "2 of 4 replicas updated"}},
		{"old left", dep(3, 3, 4, appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 4, ReadyReplicas: 5, AvailableReplicas: 5}),
			state{observed: true, msg: "1 old replicas terminating"}},
		{"scaling down", dep(3, 3, 1, full), state{observed: true, msg: "3 extra replicas terminating"}},
		{"unavailable", dep(3, 3, 4, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 4, ReadyReplicas: 4, AvailableReplicas: 3}),
			state{observed: true, msg: "3 of 4 updated replicas available"}},
		{"deadline exceeded", dep(3, 3, 4, appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 1, ReadyReplicas: 4, AvailableReplicas: 4, Conditions: []appsv1.DeploymentCondition{deadline}}),
			state{observed: true, msg: "1 of 4 replicas updated", failed: `the deployment made no progress for its progressDeadlineSeconds (60): ReplicaSet "app-1" has timed out progressing`}},
		{"deadline not yet observed", dep(4, 3, 4, appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 1, Conditions: []appsv1.DeploymentCondition{deadline}}),
			state{msg: "waiting for the deployment controller"}},
		{"replica failure", dep(3, 3, 4, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3, Conditions: []appsv1.DeploymentCondition{quota}}),
			state{observed: true, msg: "1 of 4 replicas updated; pods exceeded quota"}},
		{"scaled to zero", dep(2, 2, 0, appsv1.DeploymentStatus{}), state{observed: true, done: true, msg: "0 of 0 replicas updated and available"}},
	} {
		if got := rolloutState(tc.d); got != tc.want {
			t.Errorf("rolloutState(%s) = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestPodProblem(t *testing.T) {
	waiting := func(reason, msg string, restarts int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "app", RestartCount: restarts, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
	}
	pod := func(phase corev1.PodPhase, ready bool, cs ...corev1.ContainerStatus) *corev1.Pod {
		r := corev1.ConditionFalse
		if ready {
			r = corev1.ConditionTrue
		}
		return &corev1.Pod{Status: corev1.PodStatus{Phase: phase, ContainerStatuses: cs, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: r}}}}
	}
	crash := waiting("CrashLoopBackOff", "back-off", 3)
	crash.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}
	initCrash := waiting("CrashLoopBackOff", "", 5)
	initCrash.Name = "migrate"
	initPod := pod(corev1.PodPending, false)
	initPod.Status.InitContainerStatuses = []corev1.ContainerStatus{initCrash}
	unscheduled := pod(corev1.PodPending, false)
	unscheduled.Status.Conditions = append(unscheduled.Status.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/2 nodes are available"})
	terminating := pod(corev1.PodRunning, true)
	terminating.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}

	for _, tc := range []struct {
		name  string
		pod   *corev1.Pod
		pulls int
		want  string
		fatal bool
		state string
	}{
		{"crash loop", pod(corev1.PodRunning, false, crash), 0, "CrashLoopBackOff (3 restarts, last exit code 2 Error)", true, "crash-looping"},
		{"crash loop, young", pod(corev1.PodRunning, false, waiting("CrashLoopBackOff", "", 2)), 0, "CrashLoopBackOff (2 restarts)", false, "crash-looping"},
		{"init container", initPod, 0, "container migrate: CrashLoopBackOff (5 restarts)", true, "crash-looping"},
		{"pull failing", pod(corev1.PodPending, false, waiting("ImagePullBackOff", "Back-off pulling image", 0)), 2, "ImagePullBackOff (2 failed pulls): Back-off pulling image", false, "starting"},
		{"pull failed", pod(corev1.PodPending, false, waiting("ErrImagePull", "not found", 0)), 3, "ErrImagePull (3 failed pulls): not found", true, "starting"},
		{"invalid image", pod(corev1.PodPending, false, waiting("InvalidImageName", "bad ref", 0)), 0, "InvalidImageName: bad ref", true, "starting"},
		{"config error", pod(corev1.PodPending, false, waiting("CreateContainerConfigError", `secret "db" not found`, 0)), 0, `CreateContainerConfigError: secret "db" not found`, false, "starting"},
		{"creating", pod(corev1.PodPending, false, waiting("ContainerCreating", "", 0)), 0, "pending", false, "starting"},
		{"unscheduled", unscheduled, 0, "not scheduled: 0/2 nodes are available", false, "starting"},
		{"not ready", pod(corev1.PodRunning, false, corev1.ContainerStatus{Name: "app"}), 0, "not ready", false, "starting"},
		{"not ready, restarted", pod(corev1.PodRunning, false, corev1.ContainerStatus{Name: "app", RestartCount: 1}), 0, "not ready (1 restarts)", false, "starting"},
		{"ready", pod(corev1.PodRunning, true, corev1.ContainerStatus{Name: "app"}), 0, "ready", false, "running"},
		{"failed", pod(corev1.PodFailed, false), 0, "failed", false, "stopped"},
		{"terminating", terminating, 0, "terminating", false, "stopping"},
	} {
		got, fatal := podProblem(tc.pod, mainStatus(tc.pod, "app"), tc.pulls)
		if got != tc.want || fatal != tc.fatal {
			t.Errorf("podProblem(%s) = %q, %v, want %q, %v", tc.name, got, fatal, tc.want, tc.fatal)
		}
		if s := podState(tc.pod); s != tc.state {
			t.Errorf("podState(%s) = %q, want %q", tc.name, s, tc.state)
		}
	}
}

// TestPullFailures follows a pod through failed pulls: the third fails
// the rollout.
func TestPullFailures(t *testing.T) {
	image := "app@sha256:" + hexA
	replicas := int32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", Generation: 2},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: image}},
		}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1},
	}
	f := &follower{
		t: newTarget(Config{Env: "prod", Namespace: "ns", Deployment: "app", Now: func() time.Time { return time.Unix(100, 0) }}, nil), d: d,
		name: "app", image: image,
		pods: map[string]*corev1.Pod{}, pulls: map[string]int{}, waiting: map[string]string{},
	}
	f.start = f.t.now()
	for i, reason := range []string{"ErrImagePull", "ErrImagePull", "ImagePullBackOff", "ErrImagePull", "ImagePullBackOff", "ImagePullBackOff", "ErrImagePull"} {
		f.pods["app-1"] = &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "app-1", Labels: map[string]string{"pod-template-hash": "5d9c"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "app-5d9c", Controller: new(true)}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
				Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "manifest unknown"}},
			}}},
		}
		done, err := f.check()
		if done {
			t.Fatalf("check %d: done", i)
		}
		if i < 6 && err != nil {
			t.Fatalf("check %d (%s, %d pulls counted): %v", i, reason, f.pulls["app-1"], err)
		}
		if i == 6 {
			want := "rollout of app in prod: 0/1 updated replicas ready after 0s: pod app-1: ErrImagePull (3 failed pulls): manifest unknown"
			if err == nil || err.Error() != want {
				t.Fatalf("check after the third failed pull = %v, want %s", err, want)
			}
		}
	}
}

func TestDeploymentPatch(t *testing.T) {
	ann := annotations(spec("sha256:"+hexA, 42, 3))
	ann[AnnotationRelease] = nil
	three := int32(3)
	for _, tc := range []struct {
		name     string
		replicas *int32
		template bool
		want     string
	}{
		{"image", nil, true, `{"metadata":{"annotations":{"ferry.dev/commit":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","ferry.dev/deployment-id":"42","ferry.dev/digest":"sha256:` + hexA + `","ferry.dev/release":null}},` +
			`"spec":{"template":{"metadata":{"annotations":{"ferry.dev/commit":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","ferry.dev/deployment-id":"42","ferry.dev/digest":"sha256:` + hexA + `","ferry.dev/release":null}},` +
			`"spec":{"containers":[{"image":"app@sha256:` + hexA + `","name":"web"}]}}}}`},
		{"replicas only", &three, false, `{"metadata":{"annotations":{"ferry.dev/commit":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","ferry.dev/deployment-id":"42","ferry.dev/digest":"sha256:` + hexA + `","ferry.dev/release":null}},"spec":{"replicas":3}}`},
	} {
		got, err := deploymentPatch("web", "app@sha256:"+hexA, ann, tc.replicas, tc.template)
		if err != nil || string(got) != tc.want {
			t.Errorf("deploymentPatch(%s) = %s, %v\nwant %s", tc.name, got, err, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("deploymentPatch(%s) is not JSON", tc.name)
		}
	}
}

func TestAnnotationsMatch(t *testing.T) {
	v := func(s string) *string { return &s }
	want := map[string]*string{"a": v("1"), "b": nil}
	for _, tc := range []struct {
		have map[string]string
		want bool
	}{
		{map[string]string{"a": "1"}, true},
		{map[string]string{"a": "1", "other": "x"}, true},
		{map[string]string{"a": "1", "b": "2"}, false},
		{map[string]string{"a": "2"}, false},
		{nil, false},
	} {
		if got := annotationsMatch(tc.have, want); got != tc.want {
			t.Errorf("annotationsMatch(%v) = %v, want %v", tc.have, got, tc.want)
		}
	}
}

func TestAPIError(t *testing.T) {
	kt := newTarget(Config{Env: "prod", Namespace: "shop", Deployment: "app"}, nil)
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	for _, tc := range []struct {
		name string
		err  error
		code string
		want string
	}{
		{"not found", apierrors.NewNotFound(gr, "app"), ferry.ENOTFOUND, "deployment app not found in namespace shop of the cluster"},
		{"forbidden", apierrors.NewForbidden(gr, "app", errors.New(`User "x" cannot get`)), ferry.EUNAVAILABLE, `kubernetes does not let ferry get deployment app in namespace shop: deployments.apps "app" is forbidden: User "x" cannot get`},
		{"unavailable", apierrors.NewServiceUnavailable("etcd down"), ferry.EUNAVAILABLE, "get deployment app in namespace shop: kubernetes API unavailable: etcd down"},
		{"unreachable", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, ferry.EUNAVAILABLE, "kubernetes API unavailable: dial tcp: connection refused"},
		{"invalid", apierrors.NewBadRequest("bad patch"), ferry.EINVALID, "get deployment app in namespace shop: bad patch"},
		{"other", errors.New("boom"), ferry.EINTERNAL, "get deployment app in namespace shop: boom"},
	} {
		err := kt.apiError(tc.err, "get", "deployment app")
		if ferry.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("apiError(%s) = %v (%s), want %s: %s", tc.name, err, ferry.ErrorCode(err), tc.code, tc.want)
		}
	}
}

func TestJoinLogErrors(t *testing.T) {
	a := ferry.Errorf(ferry.EUNAVAILABLE, "the cluster did not serve logs for pod a: refused")
	b := ferry.Errorf(ferry.EUNAVAILABLE, "the cluster did not serve logs for pod b: refused")
	for _, tc := range []struct {
		errs []error
		want string
	}{
		{nil, ""},
		{[]error{nil, a}, a.Error()},
		{[]error{a, nil, b}, "unavailable: the cluster did not serve logs for pod a: refused (and 1 more pods)"},
	} {
		got := joinLogErrors(tc.errs)
		if s := errString(got); s != tc.want {
			t.Errorf("joinLogErrors(%v) = %q, want %q", tc.errs, s, tc.want)
		}
		if got != nil && ferry.ErrorCode(got) != ferry.EUNAVAILABLE {
			t.Errorf("joinLogErrors(%v) code = %s", tc.errs, ferry.ErrorCode(got))
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestRoundElapsed(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{34567 * time.Microsecond, 35 * time.Millisecond},
		{2345 * time.Millisecond, 2300 * time.Millisecond},
		{90400 * time.Millisecond, 90 * time.Second},
	} {
		if got := roundElapsed(tc.in); got != tc.want {
			t.Errorf("roundElapsed(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestCopyLines(t *testing.T) {
	var buf bytes.Buffer
	out := replicalog.New(&buf)
	long := strings.Repeat("x", 100_000)
	in := "first\n\nthird " + long + "\nno newline at the end"
	if err := copyLines(context.Background(), out, "app-1", strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	want := "app-1 | first\napp-1 | \napp-1 | third " + long + "\napp-1 | no newline at the end\n"
	if got := buf.String(); got != want {
		t.Errorf("copyLines(%.40q…) wrote %.80q…, want %.80q…", in, got, want)
	}

	broken := io.MultiReader(strings.NewReader("one\ntw"), iotest.ErrReader(errors.New("connection reset")))
	err := copyLines(context.Background(), out, "app-2", broken)
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "log of pod app-2 broke off: connection reset") {
		t.Errorf("copyLines(broken stream) = %v", err)
	}
	if !strings.HasSuffix(buf.String(), "app-2 | one\napp-2 | tw\n") {
		t.Errorf("copyLines(broken stream) wrote %q", buf.String())
	}
}
