package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/kubetest"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/registry"
)

// maxRolloutFailures bounds the requests that may fail while a graceful
// app (a 2 s drain on SIGTERM) rolls over on the real node. Measured with
// the 8-worker load below: 0 of 12087 failed; with no drain (exit at once
// on SIGTERM) 15 of 8217 did (connection refused). Exactly 0 would flake:
// one connection refused in ~28,000 requests was seen with no cause found.
const maxRolloutFailures = 3

// TestRealNodeBirthdayApp runs birthday-app's image, built by ferry, in
// pods that really run on the test cluster's real node (scripts/k8s-node),
// behind a NodePort Service on 127.0.0.1: ferry's verify checks reach it
// there, a rollout to a new commit under load loses (almost) no request,
// `ferry logs` shows each pod's lines (read from the node's kubelet), and
// a commit whose binary crashes on start loops in CrashLoopBackOff
// and is reverted while the old pods keep serving.
func TestRealNodeBirthdayApp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds birthday-app and runs it on a real node")
	}
	k := newCluster(t)
	node := k.RealNode()
	ns := k.Namespace("ferry-node")
	ctx := context.Background()

	// An external registry the node pulls from, its credentials in a pull
	// Secret, as a cluster's would be.
	reg, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	user, password := reg.Credentials()
	auths := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg.Host(), base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	docker := t.TempDir()
	t.Setenv("DOCKER_CONFIG", docker) // not parallel from here
	if err := os.WriteFile(filepath.Join(docker, "config.json"), []byte(auths), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: ns},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(auths)},
	}
	if _, err := k.Client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	url := k.birthdayOnRealNode(ns, "birthday", 2)

	repo := newRepo(t, "../examples/birthday-app")
	yaml := fmt.Sprintf(`app: birthday-app
dataDir: %s
server: { listen: 127.0.0.1:0 }
registry: { image: %s/birthday-app }
source: { repo: %s, poll: 0 }
build:
  test: go test ./birthday/...
  go:
    main: ./cmd/birthday-app
    ldflags: -X %s.Commit={{.Commit}}
environments:
  prod:
    branch: master
    runtime: { kubernetes: { namespace: %s, deployment: birthday, container: app, kubeconfig: %s } }
    url: %s
    verify: [ { http: GET /statusz, expect: 200 }, { http: GET /version, expect: 200 } ]
`, t.TempDir(), reg.Host(), repo.Dir, buildinfoPkg, ns, k.Kubeconfig, url)
	s := start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
	c := newClient(t, s)
	repository := s.ImageRepository()

	// deploy triggers a build of master's head and waits for its deployment
	// to prod to end.
	deploy := func(commit string) *ferry.Deployment {
		t.Helper()
		if _, err := c.Trigger(ctx, "master", ""); err != nil {
			t.Fatal(err)
		}
		if b := waitBuild(t, s, commit, 5*time.Minute); b.State != ferry.BuildSucceeded {
			t.Fatalf("build of %s = %s (%s)", ferry.ShortSHA(commit), b.State, b.Reason)
		}
		return waitDeploymentEnd(t, c, "prod", commit, 5*time.Minute)
	}
	running := func(commit string) string {
		t.Helper()
		b, err := s.Ledger().BuildByCommit(ctx, s.cfg.App, commit)
		if err != nil {
			t.Fatal(err)
		}
		image := repository + "@" + b.Digest
		waitFor(t, time.Minute, fmt.Sprintf("2 ready pods of %s on %s", ferry.ShortSHA(commit), node), func() bool {
			pods, err := k.ReadyPods(ctx, ns, "app=birthday")
			if err != nil {
				t.Fatal(err)
			}
			on := 0
			for _, p := range pods {
				if p.Spec.Containers[0].Image != image || p.Spec.NodeName != node {
					return false
				}
				on++
			}
			return on == 2
		})
		if got, _ := k.image(ns, "birthday"); got != image {
			t.Fatalf("the Deployment runs %s, want %s", got, image)
		}
		// Through the Service, from the host, as a user would, once
		// kube-proxy has caught up with the endpoints: a replaced pod in
		// its 2 s drain still answers until then (on CI under load an A
		// answered right after B's rollout ended).
		waitFor(t, 15*time.Second, fmt.Sprintf("%s to answer with %s", url, ferry.ShortSHA(commit)), func() bool {
			return servedCommit(t, url) == commit
		})
		for range 5 {
			if got := servedCommit(t, url); got != commit {
				t.Fatalf("%s/version answers commit %s, want %s", url, ferry.ShortSHA(got), ferry.ShortSHA(commit))
			}
		}
		return image
	}

	// The first deployment: verified through the NodePort (a check that
	// cannot reach the app fails the deployment and reverts it).
	a := repo.Head()
	if d := deploy(a); d.State != ferry.DeploymentSucceeded {
		t.Fatalf("deployment of %s = %s (%s)", ferry.ShortSHA(a), d.State, d.Error)
	}
	running(a)

	// `ferry logs prod`: every pod's own lines, which the API server reads
	// from the node's kubelet; its first lines name the commit it runs.
	var logs strings.Builder
	if err := c.EnvLogs(ctx, "prod", 500, false, &logs); err != nil {
		t.Fatalf("ferry logs prod: %v\n%s", err, logs.String())
	}
	pods, err := k.ReadyPods(ctx, ns, "app=birthday")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		for _, want := range []string{`"msg":"starting birthday-app"`, `"commit":"` + a + `"`, `"msg":"listening"`} {
			if !logLine(logs.String(), p.Name, want) {
				t.Errorf("ferry logs prod has no line of pod %s with %s:\n%s", p.Name, want, logs.String())
			}
		}
	}

	// A rollout to a new commit while a load runs through the Service.
	load := loadtest.Start(loadtest.Config{
		Workers: 8, URL: url + "/version", Timeout: 2 * time.Second, Pause: 5 * time.Millisecond,
		Key: func(_ *http.Response, body []byte) string { return commitOf(body) },
	})
	t.Cleanup(load.Stop)
	waitFor(t, 30*time.Second, "the load's first answers", func() bool { return load.OK() >= 100 })
	repo.Write("RELEASE", "B\n")
	b := repo.CommitAll("release B")
	began := time.Now()
	if d := deploy(b); d.State != ferry.DeploymentSucceeded {
		t.Fatalf("deployment of %s = %s (%s)", ferry.ShortSHA(b), d.State, d.Error)
	}
	imageB := running(b)
	time.Sleep(3 * time.Second) // the old pods' drain (BIRTHDAY_SHUTDOWN_DELAY) ends
	load.Stop()
	served := load.Served(began)
	t.Logf("rollout %s → %s under load: %d requests ok, %d failed %v; answered by %d of A, %d of B",
		ferry.ShortSHA(a), ferry.ShortSHA(b), load.OK(), load.Failed(), load.Errors(), served[a], served[b])
	if load.Failed() > maxRolloutFailures {
		t.Errorf("%d requests failed during the rollout, want at most %d: %v", load.Failed(), maxRolloutFailures, load.Errors())
	}
	if served[a] == 0 || served[b] == 0 {
		t.Errorf("answers during the rollout: %v, want some of %s and some of %s", served, ferry.ShortSHA(a), ferry.ShortSHA(b))
	}

	// A commit whose binary exits on start: its pods loop in
	// CrashLoopBackOff, the rollout fails and is reverted, and B's pods
	// serve throughout (maxUnavailable 0).
	repo.Write("cmd/birthday-app/crash.go", "package main\n\nimport \"os\"\n\n// This release crashes on start.\nfunc init() { os.Exit(3) }\n")
	crash := repo.CommitAll("crash on start")
	during := loadtest.Start(loadtest.Config{
		Workers: 2, URL: url + "/version", Timeout: 2 * time.Second, Pause: 5 * time.Millisecond,
		Key: func(_ *http.Response, body []byte) string { return commitOf(body) },
	})
	t.Cleanup(during.Stop)
	watch := k.WatchReady(ns, "app=birthday", imageB)
	d := deploy(crash)
	if d.State != ferry.DeploymentRolledBack || !strings.Contains(d.Error, "CrashLoopBackOff") {
		t.Fatalf("deployment of the crashing commit = %s (%q), want rolled back naming CrashLoopBackOff", d.State, d.Error)
	}
	running(b)
	during.Stop()
	if got := fewestReady(t, watch); got < 2 {
		t.Errorf("B's ready pods fell to %d during the failed rollout, want never below 2", got)
	}
	t.Logf("crash-looping rollout reverted (%s); meanwhile %d requests ok, %d failed %v, answered by %v",
		d.Error, during.OK(), during.Failed(), during.Errors(), during.Served(time.Time{}))
	if during.Failed() > maxRolloutFailures || len(during.Served(time.Time{})) != 1 {
		t.Errorf("during the crash-looping rollout: %d requests failed, answers by %v; want at most %d failed, all by %s",
			during.Failed(), during.Served(time.Time{}), maxRolloutFailures, ferry.ShortSHA(b))
	}
}

// birthdayOnRealNode makes what a user's manifests would for birthday-app
// on the real node: a Deployment of replicas pinned to it (on the node's
// pause image until ferry sets one), pulling with the Secret "registry",
// readiness on /statusz, a 2 s drain on SIGTERM, SQLite in an emptyDir;
// and a NodePort Service. It returns the Service's URL on 127.0.0.1.
func (c *cluster) birthdayOnRealNode(ns, name string, replicas int32) string {
	c.t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": name}
	spec := corev1.PodSpec{
		ImagePullSecrets:              []corev1.LocalObjectReference{{Name: "registry"}},
		TerminationGracePeriodSeconds: new(int64(20)),
		EnableServiceLinks:            new(false),
		AutomountServiceAccountToken:  new(false),
		Volumes:                       []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		Containers: []corev1.Container{{
			Name: "app", Image: kubetest.PauseImage, ImagePullPolicy: corev1.PullIfNotPresent,
			Env: []corev1.EnvVar{
				{Name: "BIRTHDAY_LISTEN", Value: "0.0.0.0:8080"},
				{Name: "BIRTHDAY_DB", Value: "sqlite:///data/birthday.db"},
				{Name: "BIRTHDAY_SHUTDOWN_DELAY", Value: "2s"},
			},
			Ports:        []corev1.ContainerPort{{ContainerPort: 8080}},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/statusz", Port: intstr.FromInt32(8080)}},
				PeriodSeconds: 1, FailureThreshold: 1,
			},
		}},
	}
	kubetest.OnRealNode(&spec)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: new(intstr.FromInt32(0)), MaxSurge: new(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, Selector: labels,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	got, err := c.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", got.Spec.Ports[0].NodePort)
}

// waitDeploymentEnd waits until env's deployment of commit (not a
// rollback) ends, in any final state.
func waitDeploymentEnd(t testing.TB, c interface {
	Deployments(context.Context, string, int) ([]*ferry.Deployment, error)
}, env, commit string, timeout time.Duration) *ferry.Deployment {
	t.Helper()
	var found *ferry.Deployment
	waitFor(t, timeout, fmt.Sprintf("the end of %s's deployment of %s", env, ferry.ShortSHA(commit)), func() bool {
		ds, err := c.Deployments(context.Background(), env, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Commit == commit && d.Kind != ferry.DeployRollback && d.State.Final() {
				found = d
				return true
			}
		}
		return false
	})
	return found
}

// servedCommit is the commit birthday-app at url says it runs.
func servedCommit(t testing.TB, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/version = %d %q, %v", url, resp.StatusCode, body, err)
	}
	return commitOf(body)
}

// logLine reports whether logs (ferry logs: "pod | line" lines) has a line
// of pod containing want.
func logLine(logs, pod, want string) bool {
	for line := range strings.Lines(logs) {
		if strings.HasPrefix(line, pod+" | ") && strings.Contains(line, want) {
			return true
		}
	}
	return false
}

// commitOf is the commit of a /version answer ("" when it has none).
func commitOf(body []byte) string {
	var v version
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.Commit
}
