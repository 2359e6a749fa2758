package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/lb"
	"github.com/ferryhq/ferry/runtime/local"
)

// splitter is the controller's canary contract (controller/canary.go),
// which the node's client must meet for ferry serve to run canaries on
// the node.
type splitter interface {
	Split(ctx context.Context, s ferry.Split, progress func(ferry.Progress)) error
	EndSplit(ctx context.Context) error
	Figures(ctx context.Context) (map[string]analysis.Figures, error)
}

var _ splitter = (*Runtime)(nil)

// nodeProcessEnv makes this test binary run a node on the data directory
// it names instead of the tests: a node in a process of its own, which a
// test can kill with SIGKILL.
const nodeProcessEnv = "FERRY_NODE_TEST_PROCESS"

func init() {
	dir := os.Getenv(nodeProcessEnv)
	if dir == "" {
		return
	}
	n, err := New(Config{DataDir: dir, Version: "test-process", Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err == nil {
		err = n.Run(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startNodeProcess runs a node on dataDir in a new process (this test
// binary) and waits until it answers. The test's end kills it.
func startNodeProcess(t *testing.T, dataDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), nodeProcessEnv+"="+dataDir)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("node process %d:\n%s", cmd.Process.Pid, log.String())
		}
	})
	c := NewClient(ClientConfig{DataDir: dataDir})
	defer c.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if h, err := c.Health(t.Context()); err == nil && h.PID == cmd.Process.Pid {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("node process does not answer:\n%s", log.String())
		}
	}
}

// servedByTrack sends n GET /version through addr from 4 workers, all of
// which must succeed, and counts them by the track of the replica that
// answered (tracks: replica id → track, from Status).
func servedByTrack(t *testing.T, addr string, n int, tracks map[string]string) map[string]int {
	t.Helper()
	l := loadtest.Start(loadtest.Config{
		Workers: 4, Max: int64(n), URL: "http://" + addr + "/version", Timeout: 5 * time.Second,
		Key: func(res *http.Response, _ []byte) string { return res.Header.Get(lb.ReplicaHeader) },
	})
	for deadline := time.Now().Add(time.Minute); l.OK()+l.Failed() < int64(n) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	l.Stop()
	if l.Failed() != 0 || l.OK() != int64(n) {
		t.Fatalf("%d of %d requests ok, %d failed: %q", l.OK(), n, l.Failed(), l.Errors())
	}
	out := map[string]int{}
	for id, c := range l.Served(time.Time{}) {
		out[cmp.Or(tracks[id], "replica "+id)] += c
	}
	return out
}

func tracksOf(st ferry.Status) map[string]string {
	m := map[string]string{}
	for _, r := range st.Replicas {
		m[r.ID] = r.Track
	}
	return m
}

func countTracks(st ferry.Status) map[string]int {
	m := map[string]int{}
	for _, r := range st.Replicas {
		m[r.Track]++
	}
	return m
}

// TestSplitThroughNode runs a canary on the node with runc containers, as
// ferry serve does: Status shows each track's replicas, the balancer
// gives each track its exact share under concurrent load, the figures
// read over the socket count it, another weight restarts nothing, a
// client that comes back (ferry serve restarted) finds the split and ends
// it under load with no request failed, and the stable replicas serve
// every request again.
func TestSplitThroughNode(t *testing.T) {
	d := stableDev(t)
	im, data, rt, stable, ctx := d.im, d.data, d.rt, d.stable, t.Context()
	if f, err := rt.Figures(ctx); err != nil || len(f) != 0 {
		t.Fatalf("Figures with no split = %v, %v; want an empty map", f, err)
	}
	var steps int
	s := ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Baseline: true, Weight: 5}
	if err := rt.Split(ctx, s, func(ferry.Progress) { steps++ }); err != nil {
		t.Fatalf("Split through the node: %v", err)
	}
	if steps == 0 {
		t.Error("Split streamed no progress")
	}
	st, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := countTracks(st); st.Digest != im.v1 || st.Ready != 2 || got[ferry.TrackStable] != 2 || got[ferry.TrackCanary] != 1 || got[ferry.TrackBaseline] != 1 {
		t.Fatalf("Status in the split = %+v (by track %v), want v1 with 2 stable replicas, 1 canary, 1 baseline", st, got)
	}
	for _, r := range st.Replicas {
		if want := map[string]string{ferry.TrackCanary: im.v2, ferry.TrackBaseline: im.v1, ferry.TrackStable: im.v1}[r.Track]; r.Digest != want {
			t.Errorf("%s replica %s runs %s, want %s", r.Track, r.ID, ferry.ShortDigest(r.Digest), ferry.ShortDigest(want))
		}
	}

	const n = 2000
	byTrack := servedByTrack(t, rt.Addr(), n, tracksOf(st))
	if byTrack[ferry.TrackCanary] != n/20 || byTrack[ferry.TrackBaseline] != n/20 || byTrack[ferry.TrackStable] != n-n/10 {
		t.Errorf("%d requests in a 5%% split by track %v, want exactly %d each to canary and baseline", n, byTrack, n/20)
	}
	figs, err := rt.Figures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 3 {
		t.Errorf("figures of %d tracks %v, want stable, canary and baseline", len(figs), figs)
	}
	for track, c := range byTrack {
		if f := figs[track]; f.Requests != int64(c) || f.Errors != 0 || f.Latency.Count() != int64(c) {
			t.Errorf("figures of %s through the node: %d requests, %d errors, %d timed; want %d, 0, %d", track, f.Requests, f.Errors, f.Latency.Count(), c, c)
		}
	}

	// Another weight: the same replicas, another share.
	s.Weight = 25
	if err := rt.Split(ctx, s, nil); err != nil {
		t.Fatalf("Split at 25%%: %v", err)
	}
	st2, _ := rt.Status(ctx)
	if !equalIDs(st2, st) {
		t.Errorf("Split at another weight changed the replicas: %v, then %v", ids(st), ids(st2))
	}
	if got := servedByTrack(t, rt.Addr(), 400, tracksOf(st)); got[ferry.TrackCanary] != 100 || got[ferry.TrackBaseline] != 100 {
		t.Errorf("at 25%%: by track %v of 400, want 100 each to canary and baseline", got)
	}

	// ferry serve restarts: a new client finds the split, its figures
	// since it began, and ends it (as the controller does for a canary
	// interrupted by its restart) with no request lost.
	c2 := NewClient(ClientConfig{DataDir: data, Images: im.src})
	defer c2.Close()
	rt2, err := c2.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	if f, err := rt2.Figures(ctx); err != nil || f[ferry.TrackCanary].Requests != n/20+100 {
		t.Errorf("figures after ferry's restart: canary %+v, %v; want %d requests since the split began", f[ferry.TrackCanary], err, n/20+100)
	}
	load := loadtest.Start(loadtest.Config{Workers: 4, URL: "http://" + rt.Addr() + "/version", Timeout: 5 * time.Second,
		Key: func(_ *http.Response, body []byte) string { return strings.TrimSpace(string(body)) }})
	time.Sleep(300 * time.Millisecond)
	if err := rt2.EndSplit(ctx); err != nil {
		t.Fatalf("EndSplit through the node: %v", err)
	}
	ended := time.Now()
	time.Sleep(300 * time.Millisecond)
	load.Stop()
	if load.Failed() != 0 || load.OK() == 0 {
		t.Errorf("across EndSplit %d of %d requests failed: %v", load.Failed(), load.OK()+load.Failed(), load.Errors())
	}
	if v := load.Served(time.Time{}); v["v2"] == 0 {
		t.Errorf("the canary served nothing of the load before EndSplit: %v", v)
	}
	if v := load.Served(ended); v["v2"] != 0 || v["v1"] == 0 {
		t.Errorf("after EndSplit the load was served %v, want v1 only", v)
	}
	after, _ := rt2.Status(ctx)
	if got := countTracks(after); after.Digest != im.v1 || len(after.Replicas) != 2 || got[ferry.TrackStable] != 2 {
		t.Errorf("Status after EndSplit = %+v, want the 2 stable v1 replicas only", after)
	}
	if f, err := rt2.Figures(ctx); err != nil || len(f) != 0 {
		t.Errorf("Figures after EndSplit = %v, %v; want none", f, err)
	}
	if err := rt2.EndSplit(ctx); err != nil {
		t.Errorf("EndSplit with no split = %v, want nil", err)
	}
}

func equalIDs(a, b ferry.Status) bool { return strings.Join(ids(a), ",") == strings.Join(ids(b), ",") }

// TestSplitPromoteThroughNode: the controller's promotion, Apply of the
// canary's spec during the split and then EndSplit, leaves the new
// version on the stable replicas, and the node keeps that spec: a node
// started after its own crash brings back the new version.
func TestSplitPromoteThroughNode(t *testing.T) {
	d := stableDev(t)
	im, data, rt, stable, ctx := d.im, d.data, d.rt, d.stable, t.Context()
	if err := rt.Split(ctx, ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Baseline: true, Weight: 25}, nil); err != nil {
		t.Fatal(err)
	}
	load := loadtest.Start(loadtest.Config{Workers: 4, URL: "http://" + rt.Addr() + "/version", Timeout: 5 * time.Second})
	if err := rt.Apply(ctx, spec(im.v2, 2), nil); err != nil {
		t.Fatalf("Apply of the canary's spec during the split: %v", err)
	}
	if f, _ := rt.Figures(ctx); len(f) != 3 {
		t.Errorf("Figures after Apply during the split = %v, want the split's 3 tracks still", f)
	}
	if err := rt.EndSplit(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	load.Stop()
	if load.Failed() != 0 || load.OK() == 0 {
		t.Errorf("across the promotion %d of %d requests failed: %v", load.Failed(), load.OK()+load.Failed(), load.Errors())
	}
	st, _ := rt.Status(ctx)
	if st.Digest != im.v2 || len(st.Replicas) != 2 || st.Ready != 2 {
		t.Errorf("Status after the promotion = %+v, want 2 v2 replicas", st)
	}
	states, err := loadStates(data)
	if err != nil || len(states) != 1 || states[0].Spec == nil || states[0].Spec.Digest != im.v2 {
		t.Errorf("the node's state after the promotion = %+v, %v; want dev's spec of v2", states, err)
	}
}

// TestSplitErrorsThroughNode: the local runtime's refusals and a
// crash-looping canary's *local.ReplicaError reach the client as they
// are, and a failed split leaves the stable replicas serving everything.
func TestSplitErrorsThroughNode(t *testing.T) {
	d := stableDev(t)
	im, rt, stable, ctx := d.im, d.rt, d.stable, t.Context()
	for _, tc := range []struct {
		name string
		s    ferry.Split
		code string
	}{
		{"over half with a baseline", ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Baseline: true, Weight: 60}, ferry.EINVALID},
		{"negative weight", ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Weight: -1}, ferry.EINVALID},
		{"another environment", ferry.Split{Stable: stable, Canary: ferry.Spec{Env: "prod", Digest: im.v2, Replicas: 1}, Weight: 5}, ferry.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := rt.Split(ctx, tc.s, nil); ferry.ErrorCode(err) != tc.code {
				t.Errorf("Split = %v, want the node's %s", err, tc.code)
			}
		})
	}

	load := loadtest.Start(loadtest.Config{Workers: 4, URL: "http://" + rt.Addr() + "/version", Timeout: 5 * time.Second,
		Key: func(_ *http.Response, body []byte) string { return strings.TrimSpace(string(body)) }})
	err := rt.Split(ctx, ferry.Split{Stable: stable, Canary: spec(im.crash, 2), Baseline: true, Weight: 5}, nil)
	load.Stop()
	re, ok := errors.AsType[*local.ReplicaError](err)
	if !ok || !strings.Contains(re.Reason, "crash-looping") || re.Digest != im.crash || re.Env != "dev" || len(re.Log) == 0 {
		t.Fatalf("Split of a crash-looping canary through the node = %v (%#v), want a crash-looping *local.ReplicaError of the canary with its log", err, re)
	}
	if !strings.Contains(err.Error(), re.ID) || !strings.Contains(err.Error(), "crash-looping") {
		t.Errorf("the error's text %q does not name the replica %s and its reason", err, re.ID)
	}
	if load.Failed() != 0 || len(load.Served(time.Time{})) != 1 || load.Served(time.Time{})["v1"] == 0 {
		t.Errorf("during the failed split the load was served %v, %d failed (%v); want v1 only", load.Served(time.Time{}), load.Failed(), load.Errors())
	}
	st, _ := rt.Status(ctx)
	if st.Digest != im.v1 || st.Ready != 2 || len(st.Replicas) != 2 {
		t.Errorf("Status after the failed split = %+v, want the 2 stable replicas only", st)
	}
	if f, err := rt.Figures(ctx); err != nil || len(f) != 0 {
		t.Errorf("Figures after the failed split = %v, %v; want none", f, err)
	}

	// A split runs; one of another canary is refused until it ends.
	if err := rt.Split(ctx, ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Weight: 5}, nil); err != nil {
		t.Fatal(err)
	}
	if err := rt.Split(ctx, ferry.Split{Stable: stable, Canary: spec(im.crash, 2), Weight: 5}, nil); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("a split of another canary = %v, want the node's ECONFLICT", err)
	}
}

// TestSplitAcrossHandover: a new node binary takes over with a split
// running. The split is not handed over: the stable replicas serve on
// (no request fails), the canary and baseline are gone, and Status and
// Figures say so, which makes the controller abort the canary.
func TestSplitAcrossHandover(t *testing.T) {
	requireContainers(t)
	im := appImages(t)
	data := t.TempDir()
	_, oldDone := startNode(t, Config{DataDir: data, Logger: testLogger(t).With("node", "old")})
	ctx := t.Context()
	c := NewClient(ClientConfig{DataDir: data, Images: im.src})
	defer c.Close()
	waitHealthy(t, c)
	rt, err := c.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	stable := spec(im.v1, 2)
	if err := rt.Apply(ctx, stable, nil); err != nil {
		t.Fatal(err)
	}
	if err := rt.Split(ctx, ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Baseline: true, Weight: 20}, nil); err != nil {
		t.Fatal(err)
	}

	load := loadtest.Start(loadtest.Config{Workers: 4, URL: "http://" + rt.Addr() + "/version", Timeout: 5 * time.Second})
	stopNew, newDone := startNode(t, Config{DataDir: data, Takeover: true, Logger: testLogger(t).With("node", "new")})
	defer func() {
		stopNew()
		if err := <-newDone; err != nil {
			t.Errorf("new node Run: %v", err)
		}
	}()
	select {
	case err := <-oldDone:
		if err != nil {
			t.Errorf("old node's Run after handing over = %v, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the old node did not exit after the handover")
	}
	time.Sleep(300 * time.Millisecond)
	load.Stop()
	if load.Failed() != 0 || load.OK() == 0 {
		t.Errorf("across the handover with a split %d of %d requests failed: %v", load.Failed(), load.OK()+load.Failed(), load.Errors())
	}
	t.Logf("%d requests across the handover with a split, %d failed", load.OK()+load.Failed(), load.Failed())
	rt2, err := c.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	splitGone(t, rt2, im.v1)
}

// splitGone checks that dev runs its 2 stable replicas of digest only,
// serves them only, and reports no split.
func splitGone(t *testing.T, rt *Runtime, digest string) {
	t.Helper()
	ctx := t.Context()
	if f, err := rt.Figures(ctx); err != nil || len(f) != 0 {
		t.Errorf("Figures = %v, %v; want none: no split runs", f, err)
	}
	st, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := countTracks(st); st.Digest != digest || len(st.Replicas) != 2 || st.Ready != 2 || got[ferry.TrackStable] != 2 {
		t.Errorf("dev = %+v, want the 2 stable replicas of %s only", st, ferry.ShortDigest(digest))
	}
	if byTrack := servedByTrack(t, rt.Addr(), 100, tracksOf(st)); byTrack[ferry.TrackStable] != 100 {
		t.Errorf("100 requests served by track %v, want the stable replicas only", byTrack)
	}
	if err := rt.EndSplit(ctx); err != nil {
		t.Errorf("EndSplit with no split = %v, want nil", err)
	}
}

// TestSplitAcrossNodeKill: the node dies (SIGKILL) with a split running;
// its replicas die with it. The node started again brings back the
// stable replicas only, from its state, and removes the containers of
// the canary and baseline that runc still knew: Status and Figures tell
// that no split runs.
func TestSplitAcrossNodeKill(t *testing.T) {
	requireContainers(t)
	im := appImages(t)
	data := t.TempDir()
	first := startNodeProcess(t, data)
	ctx := t.Context()
	c := NewClient(ClientConfig{DataDir: data, Images: im.src})
	defer c.Close()
	rt, err := c.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	stable := spec(im.v1, 2)
	if err := rt.Apply(ctx, stable, nil); err != nil {
		t.Fatal(err)
	}
	if err := rt.Split(ctx, ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Baseline: true, Weight: 20}, nil); err != nil {
		t.Fatal(err)
	}
	inSplit, _ := rt.Status(ctx)
	if len(inSplit.Replicas) != 4 {
		t.Fatalf("Status in the split = %+v, want 4 replicas", inSplit)
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	startNodeProcess(t, data)
	rt2, err := c.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, rt2, 2)
	splitGone(t, rt2, im.v1)
	st, _ := rt2.Status(ctx)
	for _, r := range st.Replicas {
		for _, old := range inSplit.Replicas {
			if r.ID == old.ID && r.Track != old.Track {
				t.Errorf("replica %s was %s before the kill and is %s after", r.ID, old.Track, r.Track)
			}
		}
	}
	// runc knows no container of the old split.
	out, err := exec.Command("runc", "--root", data+"/runc/state", "list", "--quiet").Output()
	if err != nil {
		t.Fatalf("runc list: %v", err)
	}
	known := strings.Fields(string(out))
	for _, old := range inSplit.Replicas {
		if old.Track != ferry.TrackStable && slices.Contains(known, old.ID) && !slices.Contains(ids(st), old.ID) {
			t.Errorf("runc still knows the %s container %s after the node came back: %v", old.Track, old.ID, known)
		}
	}
}

// waitReady waits until rt has n ready replicas.
func waitReady(t *testing.T, rt *Runtime, n int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		st, err := rt.Status(t.Context())
		if err == nil && st.Ready == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev has not %d ready replicas after a minute: %+v, %v", n, st, err)
		}
	}
}

// splitDev is dev on a node in this process with runc containers: two
// stable replicas of v1, before a test splits it.
type splitDev struct {
	im     images
	data   string
	c      *Client
	rt     *Runtime
	stable ferry.Spec
}

func stableDev(t *testing.T) splitDev {
	t.Helper()
	requireContainers(t)
	d := splitDev{im: appImages(t), data: t.TempDir()}
	runNode(t, d.data, testLogger(t))
	d.c = NewClient(ClientConfig{DataDir: d.data, Images: d.im.src})
	t.Cleanup(func() { d.c.Close() })
	rt, err := d.c.Open(t.Context(), devConfig())
	if err != nil {
		t.Fatal(err)
	}
	d.rt, d.stable = rt, spec(d.im.v1, 2)
	if err := rt.Apply(t.Context(), d.stable, nil); err != nil {
		t.Fatal(err)
	}
	return d
}
