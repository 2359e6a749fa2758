package node

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/internal/loadtest"
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

// TestSplitThroughNode runs a canary on the node with runc containers:
// the exact share per track through the node's balancer, the figures
// read over the socket, a client (ferry serve) that comes back and finds
// the split, and a handover to a new node, which brings back the stable
// replicas only and says so in its figures, with no request failed.
func TestSplitThroughNode(t *testing.T) {
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
	if f, err := rt.Figures(ctx); err != nil || len(f) != 0 {
		t.Fatalf("Figures with no split = %v, %v; want an empty map", f, err)
	}
	var steps int
	s := ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Baseline: true, Weight: 20}
	if err := rt.Split(ctx, s, func(ferry.Progress) { steps++ }); err != nil {
		t.Fatalf("Split through the node: %v", err)
	}
	if steps == 0 {
		t.Error("Split streamed no progress")
	}
	if err := rt.Split(ctx, ferry.Split{Stable: stable, Canary: spec(im.v2, 2), Baseline: true, Weight: 60}, nil); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("Split at 60%% with a baseline = %v, want the node's EINVALID", err)
	}

	const n = 500
	versions := map[string]int{}
	for range n {
		code, body := get(t, rt.Addr(), "/version")
		if code != http.StatusOK {
			t.Fatalf("GET /version in the split = %d %q", code, body)
		}
		versions[body]++
	}
	if versions["v2"] != n/5 || versions["v1"] != n-n/5 {
		t.Errorf("%d requests in a 20%% split served %v, want exactly %d by v2", n, versions, n/5)
	}

	// ferry serve restarts: a new client finds the split and its figures.
	c2 := NewClient(ClientConfig{DataDir: data, Images: im.src})
	defer c2.Close()
	rt2, err := c2.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	figs, err := rt2.Figures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	canary := figs[ferry.TrackCanary]
	if canary.Requests != n/5 || figs[ferry.TrackBaseline].Requests != n/5 || figs[ferry.TrackStable].Requests != n-2*n/5 ||
		canary.Latency.Count() != n/5 {
		t.Errorf("figures through the node = %+v, want %d canary, %d baseline, %d stable", figs, n/5, n/5, n-2*n/5)
	}

	// A new node takes over with the split running: the stable replicas
	// serve on, the canary is gone, and its figures say so.
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
	rt3, err := c2.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	if f, err := rt3.Figures(ctx); err != nil || len(f) != 0 {
		t.Errorf("Figures after the handover = %v, %v; want none: the new node runs no split", f, err)
	}
	st, err := rt3.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Digest != im.v1 || len(st.Replicas) != 2 || st.Ready != 2 {
		t.Errorf("after the handover dev = %+v, want the 2 stable v1 replicas only", st)
	}
	for range 20 {
		if _, body := get(t, rt.Addr(), "/version"); body != "v1" {
			t.Fatalf("after the handover GET /version = %q, want v1 only", body)
		}
	}
	if err := rt3.EndSplit(ctx); err != nil {
		t.Errorf("EndSplit with no split = %v, want nil", err)
	}
}
