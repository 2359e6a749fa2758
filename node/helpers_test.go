package node

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/oci"
	"github.com/ferryhq/ferry/runtime/local"
)

// images are runtime/local's test app in variants (serving "v1" and "v2"
// on /version, and one that exits at once: crash), pushed to an in-memory
// registry once per test binary.
type images struct {
	src           local.ImageSource
	v1, v2, crash string
}

var (
	imagesOnce sync.Once
	testImages images
	imagesErr  error
)

func appImages(t testing.TB) images {
	t.Helper()
	imagesOnce.Do(func() { testImages, imagesErr = buildImages() })
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return testImages
}

func buildImages() (images, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := filepath.Abs("../runtime/local/testdata/app")
	if err != nil {
		return images{}, err
	}
	var out strings.Builder
	base, err := oci.BuildGo(ctx, oci.GoBuild{Dir: dir, Env: []string{"GOWORK=off"}, Commit: commit}, &out)
	if err != nil {
		return images{}, fmt.Errorf("build test app: %v\n%s", err, out.String())
	}
	// The registry lives as long as the test binary.
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	pub, err := oci.NewPublisher(strings.TrimPrefix(srv.URL, "http://")+"/app", oci.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		return images{}, err
	}
	im := images{src: pub}
	for _, v := range []struct {
		d   *string
		env []string
	}{{&im.v1, []string{"VERSION=v1"}}, {&im.v2, []string{"VERSION=v2"}}, {&im.crash, []string{"VERSION=crash", "CRASH=1"}}} {
		cf, err := base.ConfigFile()
		if err != nil {
			return images{}, err
		}
		cf = cf.DeepCopy()
		cf.Config.Env = append(cf.Config.Env, v.env...)
		img, err := mutate.ConfigFile(base, cf)
		if err != nil {
			return images{}, err
		}
		if *v.d, err = pub.Push(ctx, img); err != nil {
			return images{}, err
		}
	}
	return im, nil
}

const commit = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"

// requireContainers fails (or skips, unless FERRY_TEST_REQUIRE names
// them) without root and runc: the node contains replicas as root.
func requireContainers(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "root", "the node contains replicas under runc as root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		testenv.Unavailable(t, "runc", "contained replicas need runc (apt-get install runc): %v", err)
	}
}

// testLogger logs to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runNode runs a node on dataDir in this process until the test ends.
func runNode(t testing.TB, dataDir string, logger *slog.Logger) *Node {
	t.Helper()
	n, err := New(Config{DataDir: dataDir, Logger: logger, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node Run: %v", err)
		}
	})
	c := NewClient(ClientConfig{DataDir: dataDir})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.Health(context.Background()); err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("node does not answer")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// spec is a spec of digest with n replicas and test-sized rollout bounds.
func spec(digest string, n int) ferry.Spec {
	return ferry.Spec{
		Env: "dev", Commit: commit, Image: "app", Digest: digest, Replicas: n,
		Rollout: ferry.Rollout{ReadyTimeout: 15 * time.Second, Grace: 3 * time.Second},
	}
}

// devConfig is environment dev on a free port, the app's port in $PORT.
func devConfig() EnvConfig {
	return EnvConfig{Env: "dev", Listen: "127.0.0.1:0", Readiness: "/statusz", PortEnv: "PORT"}
}
