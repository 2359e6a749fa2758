package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/loadtest"
	"golang.org/x/sys/unix"
)

// startNode runs a node in this process; done yields Run's result.
func startNode(t *testing.T, cfg Config) (cancel func(), done <-chan error) {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- n.Run(ctx) }()
	return stop, ch
}

// TestHandover: a node taking over gets the listening socket and starts
// its own replicas while the old node still serves; then the old one
// drains and exits, and no request of a load across it fails. A takeover
// that cannot start the replicas leaves the old node serving as it was.
func TestHandover(t *testing.T) {
	requireContainers(t)
	im := appImages(t)
	data := t.TempDir()
	stopOld, oldDone := startNode(t, Config{DataDir: data, Logger: testLogger(t).With("node", "old")})
	defer stopOld()
	ctx := t.Context()
	c := NewClient(ClientConfig{DataDir: data, Images: im.src})
	defer c.Close()
	waitHealthy(t, c)
	rt, err := c.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Apply(ctx, spec(im.v1, 2), nil); err != nil {
		t.Fatal(err)
	}
	before, _ := rt.Status(ctx)

	// A successor that cannot run the spec (its image is gone from the
	// data directory, and a node pulls none) gives up; the old node
	// serves on, with its replicas.
	imgDir := filepath.Join(data, "images", strings.TrimPrefix(im.v1, "sha256:"))
	if err := os.Rename(imgDir, imgDir+".away"); err != nil {
		t.Fatal(err)
	}
	load := loadtest.Start(loadtest.Config{Workers: 4, URL: "http://" + rt.Addr() + "/version", Timeout: 5 * time.Second})
	stopFailed, failedDone := startNode(t, Config{DataDir: data, Takeover: true, Logger: testLogger(t).With("node", "failed")})
	defer stopFailed()
	select {
	case err := <-failedDone:
		if err == nil || !strings.Contains(err.Error(), "not unpacked") {
			t.Errorf("failed takeover = %v, want the missing image", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the failing takeover did not end")
	}
	if err := os.Rename(imgDir+".away", imgDir); err != nil {
		t.Fatal(err)
	}
	if h, err := c.Health(ctx); err != nil || h.PID != os.Getpid() {
		t.Fatalf("after a failed takeover Health = %+v, %v", h, err)
	}
	if st, _ := rt.Status(ctx); !slices.Equal(ids(st), ids(before)) || st.Ready != 2 {
		t.Errorf("after a failed takeover dev runs %v (%d ready), want %v", ids(st), st.Ready, ids(before))
	}

	// The real one.
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
	time.Sleep(500 * time.Millisecond)
	load.Stop()
	if load.Failed() != 0 || load.OK() == 0 {
		t.Errorf("across the handovers %d of %d requests failed: %v", load.Failed(), load.OK()+load.Failed(), load.Errors())
	}
	t.Logf("%d requests across a failed and a good handover, %d failed", load.OK()+load.Failed(), load.Failed())
	// The client goes on against the new node, on the same address.
	rt2, err := c.Open(ctx, devConfig())
	if err != nil {
		t.Fatal(err)
	}
	if rt2.Addr() != rt.Addr() {
		t.Errorf("new node's dev at %s, want the handed-over %s", rt2.Addr(), rt.Addr())
	}
	after, err := rt2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Ready != 2 || after.Digest != im.v1 || slices.ContainsFunc(ids(after), func(id string) bool { return slices.Contains(ids(before), id) }) {
		t.Errorf("after the handover dev runs %v (%d ready, %s), want 2 new replicas of v1", ids(after), after.Ready, after.Digest)
	}
	if code, body := get(t, rt.Addr(), "/version"); code != 200 || body != "v1" {
		t.Errorf("GET /version = %d %q", code, body)
	}
}

func waitHealthy(t *testing.T, c *Client) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := c.Health(context.Background()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("node does not answer")
		}
	}
}

// TestHandoverKeepsListenerNonBlocking: sending the listening sockets
// leaves the balancer's own socket non-blocking. The duplicate shares the
// socket's flags; had sending put it into blocking mode, the old node's
// accept would hold its thread in the kernel, and closing its listener
// would wait for the next new connection.
func TestHandoverKeepsListenerNonBlocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(pair[1]), "peer")
	defer peer.Close()
	c, err := net.FileConn(os.NewFile(uintptr(pair[0]), "conn"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := sendHandover(c.(*net.UnixConn), handoverMsg{}, []*os.File{f}); err != nil {
		t.Fatal(err)
	}
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
		t.Fatal(err, ferr)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Error("the listening socket is in blocking mode after it was sent")
	}
}
