package kube

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/kubetest"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPlanSplit(t *testing.T) {
	for _, tc := range []struct {
		total, weight      int
		baseline, fixed    bool
		canary, base, stab int
		shares             string
	}{
		{10, 5, true, false, 1, 1, 8, "canary 1 of 10 replicas (10.0 % of requests), baseline 1 (10.0 %), stable 8 (80.0 %)"},
		{20, 5, true, false, 1, 1, 18, "canary 1 of 20 replicas (5.0 % of requests), baseline 1 (5.0 %), stable 18 (90.0 %)"},
		{10, 25, true, false, 3, 3, 4, "canary 3 of 10 replicas (30.0 % of requests), baseline 3 (30.0 %), stable 4 (40.0 %)"},
		{4, 50, true, false, 2, 2, 0, "canary 2 of 4 replicas (50.0 % of requests), baseline 2 (50.0 %), stable 0 (0.0 %)"},
		// Stable keeps one replica while the weights leave it a share,
		// even when the total grows.
		{2, 5, true, false, 1, 1, 1, "canary 1 of 3 replicas (33.3 % of requests), baseline 1 (33.3 %), stable 1 (33.3 %)"},
		{1, 5, false, false, 1, 0, 1, "canary 1 of 2 replicas (50.0 % of requests), stable 1 (50.0 %)"},
		{4, 25, false, false, 1, 0, 3, "canary 1 of 4 replicas (25.0 % of requests), stable 3 (75.0 %)"},
		// Weight 0: no canary pod, for one would take its share.
		{4, 0, true, false, 0, 0, 4, "canary 0 of 4 replicas (0.0 % of requests), stable 4 (100.0 %)"},
		// An autoscaler owns the stable count: the canary comes on top.
		{6, 10, true, true, 1, 1, 6, "canary 1 of 8 replicas (12.5 % of requests), baseline 1 (12.5 %), stable 6 (75.0 %)"},
	} {
		p := planSplit(tc.total, tc.weight, tc.baseline, tc.fixed)
		if p != (plan{tc.canary, tc.base, tc.stab}) || p.String() != tc.shares {
			t.Errorf("planSplit(%d, %d %%, baseline %v, fixed %v) = %+v %q, want %d/%d/%d %q",
				tc.total, tc.weight, tc.baseline, tc.fixed, p, p, tc.canary, tc.base, tc.stab, tc.shares)
		}
	}
}

func TestVersion(t *testing.T) {
	if got := Version("sha256:0123456789abcdef0123"); got != "0123456789ab" {
		t.Errorf("Version = %q, want 0123456789ab", got)
	}
	s := ferry.Split{Stable: ferry.Spec{Digest: "sha256:" + strings.Repeat("a", 64)}, Canary: ferry.Spec{Digest: "sha256:" + strings.Repeat("b", 64)}, Baseline: true}
	if got := Versions(s); len(got) != 2 || got[ferry.TrackCanary] != strings.Repeat("b", 12) || got[ferry.TrackBaseline] != strings.Repeat("a", 12) {
		t.Errorf("Versions(with baseline) = %v", got)
	}
	s.Baseline = false
	if got := Versions(s); len(got) != 2 || got[ferry.TrackStable] != strings.Repeat("a", 12) {
		t.Errorf("Versions(without baseline) = %v", got)
	}
}

// trackPods names the pods, not terminating, of a track in ns, by its labels.
func (c *cluster) trackPods(ns, track string) []string {
	c.t.Helper()
	list, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=app," + LabelTrack + "=" + track})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	return out
}

// TestSplit runs a canary with a baseline beside a Deployment of 10,
// raises its weight, promotes it (Apply of the canary during the split,
// then EndSplit) and checks at each step the counts, the labels the
// Service would select, Status, and that never fewer than 10 pods were
// ready.
func TestSplit(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	stable := spec(newDigest(), 1, 10)
	c.create(testDeployment(ns, stable))
	kt := c.target(ns)
	ctx := context.Background()
	canary := spec(newDigest(), 2, 10)

	serving := c.watchServing(ns, "", 10) // app=app: what the Service selects
	var log progressLog
	if err := kt.Split(ctx, ferry.Split{Stable: stable, Canary: canary, Baseline: true, Weight: 5}, log.add); err != nil {
		t.Fatalf("Split 5 %%: %v", err)
	}
	ps := log.all()
	want := "canary 1 of 10 replicas (10.0 % of requests), baseline 1 (10.0 %), stable 8 (80.0 %), asked 5 %"
	if len(ps) == 0 || ps[len(ps)-1].Message != want {
		t.Errorf("last progress = %+v, want %q", ps, want)
	}
	for _, tc := range []struct {
		name, digest, track string
		replicas            int32
	}{
		{"app-canary", canary.Digest, ferry.TrackCanary, 1},
		{"app-baseline", stable.Digest, ferry.TrackBaseline, 1},
	} {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, tc.name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		tl := d.Spec.Template.Labels
		if *d.Spec.Replicas != tc.replicas || d.Status.ReadyReplicas != tc.replicas ||
			d.Spec.Template.Spec.Containers[0].Image != testImage+"@"+tc.digest ||
			tl["app"] != "app" || tl[LabelTrack] != tc.track || tl[LabelVersion] != Version(tc.digest) ||
			d.Spec.Template.Annotations[AnnotationDigest] != tc.digest || d.Annotations[AnnotationSplitReplicas] != "10" {
			t.Errorf("%s: %d replicas (%d ready), image %s, template labels %v, annotations %v; want %d of %s, track %s",
				tc.name, *d.Spec.Replicas, d.Status.ReadyReplicas, d.Spec.Template.Spec.Containers[0].Image, tl, d.Annotations, tc.replicas, tc.digest, tc.track)
		}
		if refs := d.OwnerReferences; len(refs) != 1 || refs[0].Name != "app" || refs[0].Kind != "Deployment" {
			t.Errorf("%s owner references = %+v, want the environment's Deployment", tc.name, refs)
		}
	}
	if n := *c.deployment(ns).Spec.Replicas; n != 8 {
		t.Errorf("environment's Deployment at %d replicas during the split, want 8", n)
	}
	checkStatus := func(stableDigest string, stableN, canaryN, baselineN int) {
		t.Helper()
		st, err := kt.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var tracks []string
		for _, r := range st.Replicas {
			switch {
			case strings.HasPrefix(r.ID, "app-canary-") && r.Digest == canary.Digest && r.Ready:
				tracks = append(tracks, "canary")
			case strings.HasPrefix(r.ID, "app-baseline-") && r.Digest == stable.Digest && r.Ready:
				tracks = append(tracks, "baseline")
			case r.Digest == stableDigest && r.Ready:
				tracks = append(tracks, "stable")
			default:
				t.Errorf("replica %+v is none of the split's", r)
			}
		}
		var wantTracks []string
		for _, n := range []struct {
			track string
			n     int
		}{{"stable", stableN}, {"canary", canaryN}, {"baseline", baselineN}} {
			wantTracks = append(wantTracks, slices.Repeat([]string{n.track}, n.n)...)
		}
		if st.Digest != stableDigest || st.Ready != stableN || st.Desired != stableN || !slices.Equal(tracks, wantTracks) {
			t.Errorf("Status = digest %s, %d/%d ready, tracks %v; want the stable %s, %d/%d, tracks %v",
				st.Digest, st.Ready, st.Desired, tracks, stableDigest, stableN, stableN, wantTracks)
		}
	}
	checkStatus(stable.Digest, 8, 1, 1)

	if err := kt.Scale(ctx, 3); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("Scale during a split = %v, want %s", err, ferry.ECONFLICT)
	}

	// A higher weight scales; the canary's first pod keeps running.
	first := c.trackPods(ns, ferry.TrackCanary)
	log = progressLog{}
	if err := kt.Split(ctx, ferry.Split{Stable: stable, Canary: canary, Baseline: true, Weight: 25}, log.add); err != nil {
		t.Fatalf("Split 25 %%: %v", err)
	}
	if ps := log.all(); len(ps) == 0 || !strings.HasPrefix(ps[len(ps)-1].Message, "canary 3 of 10 replicas (30.0 % of requests), baseline 3 (30.0 %), stable 4 (40.0 %)") {
		t.Errorf("progress at 25 %% = %+v", ps)
	}
	if now := c.trackPods(ns, ferry.TrackCanary); len(now) != 3 || !slices.Contains(now, first[0]) {
		t.Errorf("canary pods at 25 %% = %v, want 3 including %v", now, first)
	}
	checkStatus(stable.Digest, 4, 3, 3)

	// The same split again changes nothing.
	gens := map[string]int64{}
	for _, n := range []string{"app", "app-canary", "app-baseline"} {
		d, _ := c.Client.AppsV1().Deployments(ns).Get(ctx, n, metav1.GetOptions{})
		gens[n] = d.Generation
	}
	if err := kt.Split(ctx, ferry.Split{Stable: stable, Canary: canary, Baseline: true, Weight: 25}, nil); err != nil {
		t.Fatalf("Split 25 %% again: %v", err)
	}
	for n, g := range gens {
		if d, _ := c.Client.AppsV1().Deployments(ns).Get(ctx, n, metav1.GetOptions{}); d.Generation != g {
			t.Errorf("deployment %s: generation %d → %d by the same split", n, g, d.Generation)
		}
	}

	// Promotion: Apply of the canary while the split holds (the stable
	// count stays the split's), then EndSplit.
	if err := kt.Apply(ctx, canary, nil); err != nil {
		t.Fatalf("Apply of the canary during the split: %v", err)
	}
	if d := c.deployment(ns); *d.Spec.Replicas != 4 || d.Spec.Template.Spec.Containers[0].Image != testImage+"@"+canary.Digest {
		t.Errorf("after Apply during the split: %d replicas of %s, want 4 of the canary", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
	if err := kt.EndSplit(ctx); err != nil {
		t.Fatalf("EndSplit: %v", err)
	}
	serving.end(t)
	for _, n := range []string{"app-canary", "app-baseline"} {
		if _, err := c.Client.AppsV1().Deployments(ns).Get(ctx, n, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("deployment %s after EndSplit: %v, want not found", n, err)
		}
	}
	c.eventually(30*time.Second, func() (bool, string) {
		left := slices.Concat(c.trackPods(ns, ferry.TrackCanary), c.trackPods(ns, ferry.TrackBaseline))
		return len(left) == 0, "split pods left: " + strings.Join(left, ", ")
	})
	st, err := kt.Status(ctx)
	if err != nil || st.Digest != canary.Digest || st.Commit != canary.Commit || st.Ready != 10 || len(st.Replicas) != 10 {
		t.Errorf("Status after the promotion = %+v, %v; want 10 ready of %s", st, err, canary.Digest)
	}
	if err := kt.EndSplit(ctx); err != nil {
		t.Errorf("EndSplit without a split: %v", err)
	}
}

// TestSplitCrashLoop starts a canary that crash-loops: Split fails naming
// its pod, and leaves no canary or baseline and the environment at its
// count, serving throughout.
func TestSplitCrashLoop(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	stable := spec(newDigest(), 1, 4)
	c.create(testDeployment(ns, stable))
	bad := spec(newDigest(), 2, 4)
	c.brokenDigest(ns, bad.Digest, kubetest.CrashLoop)
	kt := c.target(ns)
	ctx := context.Background()

	serving := c.watchServing(ns, testImage+"@"+stable.Digest, 4)
	start := time.Now()
	err := kt.Split(ctx, ferry.Split{Stable: stable, Canary: bad, Baseline: true, Weight: 25}, nil)
	took := time.Since(start)
	serving.end(t)
	re, ok := errors.AsType[*RolloutError](err)
	if !ok || re.Deployment != "app-canary" || !strings.HasPrefix(re.Pod, "app-canary-") || !strings.Contains(err.Error(), "CrashLoopBackOff") {
		t.Fatalf("Split of a crash-looping canary = %v, want the canary's rollout error naming its pod", err)
	}
	t.Logf("Split failed after %s: %v", took, err)
	if took > 20*time.Second {
		t.Errorf("Split failed after %s, want within 20s", took)
	}
	for _, n := range []string{"app-canary", "app-baseline"} {
		if _, err := c.Client.AppsV1().Deployments(ns).Get(ctx, n, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("deployment %s after the failed split: %v, want not found", n, err)
		}
	}
	if d := c.deployment(ns); *d.Spec.Replicas != 4 {
		t.Errorf("environment at %d replicas after the failed split, want 4", *d.Spec.Replicas)
	}
	st, err := kt.Status(ctx)
	if err != nil || st.Digest != stable.Digest {
		t.Errorf("Status after the failed split = %+v, %v", st, err)
	}
}

// TestSplitRefused checks the splits that cannot run.
func TestSplitRefused(t *testing.T) {
	kt := newTarget(Config{Env: "test", Namespace: "ns", Deployment: "app"}, nil)
	good := spec("sha256:"+hexA, 1, 2)
	for _, tc := range []struct {
		s    ferry.Split
		want string
	}{
		{ferry.Split{Stable: good, Canary: good, Weight: -1}, "weight -1 %: want 0 to 99"},
		{ferry.Split{Stable: good, Canary: good, Baseline: true, Weight: 51}, "weight 51 %: want 0 to 50"},
		{ferry.Split{Stable: good, Canary: good, Weight: 100}, "weight 100 %: want 0 to 99"},
		{ferry.Split{Stable: good, Canary: ferry.Spec{Image: testImage, Digest: "latest"}, Weight: 5}, `digest "latest"`},
	} {
		err := kt.Split(context.Background(), tc.s, nil)
		if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Split(%+v) = %v, want %s: %s", tc.s.Weight, err, ferry.EINVALID, tc.want)
		}
	}
}

// TestSplitRestart continues a split with a new Runtime, as a restarted
// ferry would: the total comes from the cluster, not from the
// environment's count the split lowered; and EndSplit finishes an end
// that stopped in the middle.
func TestSplitRestart(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	stable := spec(newDigest(), 1, 10)
	c.create(testDeployment(ns, stable))
	ctx := context.Background()
	canary := spec(newDigest(), 2, 10)
	if err := c.target(ns).Split(ctx, ferry.Split{Stable: stable, Canary: canary, Baseline: true, Weight: 5}, nil); err != nil {
		t.Fatalf("Split 5 %%: %v", err)
	}
	kt := c.target(ns)
	var log progressLog
	if err := kt.Split(ctx, ferry.Split{Stable: stable, Canary: canary, Baseline: true, Weight: 25}, log.add); err != nil {
		t.Fatalf("Split 25 %% after a restart: %v", err)
	}
	if ps := log.all(); len(ps) == 0 || !strings.HasPrefix(ps[len(ps)-1].Message, "canary 3 of 10 replicas") {
		t.Errorf("progress after a restart = %+v, want 3 of the 10 from before the split", ps)
	}
	if n := *c.deployment(ns).Spec.Replicas; n != 4 {
		t.Errorf("environment at %d replicas, want 4", n)
	}

	// Weight 0: no canary or baseline pod (one would take its share), the
	// environment back at its count, the split's Deployments kept.
	if err := kt.Split(ctx, ferry.Split{Stable: stable, Canary: canary, Baseline: true, Weight: 0}, nil); err != nil {
		t.Fatalf("Split 0 %%: %v", err)
	}
	c.eventually(30*time.Second, func() (bool, string) {
		left := slices.Concat(c.trackPods(ns, ferry.TrackCanary), c.trackPods(ns, ferry.TrackBaseline))
		return len(left) == 0, "split pods at weight 0: " + strings.Join(left, ", ")
	})
	if d := c.deployment(ns); *d.Spec.Replicas != 10 {
		t.Errorf("environment at %d replicas at weight 0, want 10", *d.Spec.Replicas)
	}
	if err := kt.Split(ctx, ferry.Split{Stable: stable, Canary: canary, Baseline: true, Weight: 25}, nil); err != nil {
		t.Fatalf("Split 25 %% after 0 %%: %v", err)
	}
	if d := c.deployment(ns); *d.Spec.Replicas != 4 {
		t.Errorf("environment at %d replicas back at 25 %%, want 4", *d.Spec.Replicas)
	}

	// An end that stopped after the canary went to 0 and the baseline was
	// deleted: the canary's annotation still knows the total.
	deps := c.Client.AppsV1().Deployments(ns)
	if _, err := deps.Patch(ctx, "app-canary", "application/merge-patch+json", []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := deps.Delete(ctx, "app-baseline", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kt.EndSplit(ctx); err != nil {
		t.Fatalf("EndSplit after a half-done end: %v", err)
	}
	if d := c.deployment(ns); *d.Spec.Replicas != 10 || d.Status.ReadyReplicas != 10 {
		t.Errorf("environment at %d replicas (%d ready) after EndSplit, want 10", *d.Spec.Replicas, d.Status.ReadyReplicas)
	}
	if _, err := deps.Get(ctx, "app-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("canary after EndSplit: %v, want not found", err)
	}
}

// TestSplitHPA leaves an autoscaled environment's count to its
// autoscaler: the canary and baseline come on top, and the share says so.
func TestSplitHPA(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ns := c.namespace()
	stable := spec(newDigest(), 1, 6)
	c.create(testDeployment(ns, stable))
	kt := c.target(ns, func(cfg *Config) { cfg.HPA = "app" })
	ctx := context.Background()
	var log progressLog
	if err := kt.Split(ctx, ferry.Split{Stable: stable, Canary: spec(newDigest(), 2, 6), Baseline: true, Weight: 10}, log.add); err != nil {
		t.Fatalf("Split: %v", err)
	}
	want := "canary 1 of 8 replicas (12.5 % of requests), baseline 1 (12.5 %), stable 6 (75.0 %), asked 10 %; stable left at its autoscaler's count"
	if ps := log.all(); len(ps) == 0 || ps[len(ps)-1].Message != want {
		t.Errorf("progress = %+v, want %q", ps, want)
	}
	if n := *c.deployment(ns).Spec.Replicas; n != 6 {
		t.Errorf("autoscaled environment at %d replicas during the split, want its 6", n)
	}
	if err := kt.EndSplit(ctx); err != nil {
		t.Fatalf("EndSplit: %v", err)
	}
	if n := *c.deployment(ns).Spec.Replicas; n != 6 {
		t.Errorf("autoscaled environment at %d replicas after the split, want its 6", n)
	}
}

// TestSplitRBAC runs a canary as a user holding the rights the package
// comment lists, each named where RBAC can name it; and checks that with
// only the rights of a runtime without canaries (the environment's
// Deployment by name) releases still work and a Split is refused clearly.
func TestSplitRBAC(t *testing.T) {
	t.Parallel()
	base := []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"app"}, Verbs: []string{"get", "watch", "patch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, ResourceNames: []string{"app"}, Verbs: []string{"patch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"list"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}},
	}
	split := append(slices.Clone(base),
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"app-canary", "app-baseline"}, Verbs: []string{"get", "watch", "update", "patch", "delete"}},
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, ResourceNames: []string{"app-canary", "app-baseline"}, Verbs: []string{"patch"}},
	)
	for _, tc := range []struct {
		name  string
		rules []rbacv1.PolicyRule
	}{{"split", split}, {"no split", base}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := testCluster(t)
			ns := c.namespace()
			stable := spec(newDigest(), 1, 4)
			c.create(testDeployment(ns, stable))
			ctx := context.Background()
			kt, err := NewForConfig(Config{Env: "test", Namespace: ns, Deployment: "app", Poll: 100 * time.Millisecond}, c.as(ns, tc.rules))
			if err != nil {
				t.Fatal(err)
			}
			canary := spec(newDigest(), 2, 4)
			err = kt.Split(ctx, ferry.Split{Stable: stable, Canary: canary, Baseline: true, Weight: 25}, nil)
			if tc.name == "no split" {
				if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "kubernetes does not let ferry create deployment app-canary in namespace "+ns) {
					t.Errorf("Split without the rights = %v, want the refusal to create app-canary", err)
				}
				if err := kt.Apply(ctx, canary, nil); err != nil {
					t.Errorf("Apply without the rights of a split: %v", err)
				}
				if st, err := kt.Status(ctx); err != nil || st.Digest != canary.Digest || len(st.Replicas) != 4 {
					t.Errorf("Status = %+v, %v", st, err)
				}
				if err := kt.EndSplit(ctx); err != nil {
					t.Errorf("EndSplit without a split nor the rights of one: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if st, err := kt.Status(ctx); err != nil || len(st.Replicas) != 4 || st.Digest != stable.Digest {
				t.Errorf("Status during the split = %+v, %v", st, err)
			}
			if err := kt.Apply(ctx, canary, nil); err != nil {
				t.Fatalf("Apply during the split: %v", err)
			}
			if err := kt.EndSplit(ctx); err != nil {
				t.Fatalf("EndSplit: %v", err)
			}
			if d := c.deployment(ns); *d.Spec.Replicas != 4 {
				t.Errorf("environment at %d replicas after the split, want 4", *d.Spec.Replicas)
			}
		})
	}
}
