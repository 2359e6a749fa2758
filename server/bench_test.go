package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryhq/ferry"
)

// BenchmarkBuildOverhead measures what ferry adds to `go test` + `go build`
// for birthday-app. Each iteration changes the birthday package twice: one
// variant is tested and built by hand (the same commands and flags ferry
// uses), the other is pushed to ferry, from the API trigger until the build
// is recorded succeeded. Both therefore recompile and relink the same
// packages. It also reports the image size and the blobs uploaded when the
// same commit is triggered again.
//
//	go test -run '^$' -bench BuildOverhead -benchtime 5x ./server/
func BenchmarkBuildOverhead(b *testing.B) {
	repo := newRepo(b, "../examples/birthday-app")
	data := b.TempDir()
	ldflags := fmt.Sprintf("-X %s.Commit={{.Commit}}", buildinfoPkg)
	yaml := fmt.Sprintf(`app: birthday-app
dataDir: %s
server: { listen: 127.0.0.1:0 }
registry: { listen: 127.0.0.1:0 }
source: { repo: %s, poll: 0 }
build:
  test: go test ./birthday/...
  go: { main: ./cmd/birthday-app, ldflags: %q }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:0 } }
`, data, repo.Dir, ldflags)
	count := newCounter()
	s := start(b, yaml, Options{Transport: count})
	c := newClient(b, s)
	ctx := context.Background()
	// Warm the caches once, outside the measurement.
	first := repo.Head()
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		b.Fatal(err)
	}
	waitBuild(b, s, first, 10*time.Minute)

	var ferryTotal, direct time.Duration
	var lastDigest, lastCommit string
	b.ResetTimer()
	for i := range b.N {
		// By hand: go test + go build of a fresh variant.
		repo.Write("birthday/bench_variant.go", fmt.Sprintf("package birthday\n\nconst benchVariant = %d\n", 2*i+1))
		start := time.Now()
		for _, args := range [][]string{
			{"go", "test", "./birthday/..."},
			{"go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -X " + buildinfoPkg + ".Commit=x", "-o", filepath.Join(b.TempDir(), "app"), "./cmd/birthday-app"},
		} {
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Dir = repo.Dir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", args, err, out)
			}
		}
		direct += time.Since(start)

		// Through ferry: another variant, committed and triggered.
		repo.Write("birthday/bench_variant.go", fmt.Sprintf("package birthday\n\nconst benchVariant = %d\n", 2*i+2))
		commit := repo.CommitAll(fmt.Sprintf("bench variant %d", i))
		start = time.Now()
		if _, err := c.Trigger(ctx, "master", ""); err != nil {
			b.Fatal(err)
		}
		build := waitBuild(b, s, commit, 10*time.Minute)
		ferryTotal += time.Since(start)
		if build.State != ferry.BuildSucceeded {
			b.Fatalf("build %s: %s", build.State, build.Reason)
		}
		lastDigest, lastCommit = build.Digest, commit
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(ferryTotal.Seconds()/n, "ferry-s/op")
	b.ReportMetric(direct.Seconds()/n, "gotest+gobuild-s/op")
	b.ReportMetric((ferryTotal-direct).Seconds()/n, "overhead-s/op")

	ref, _ := name.ParseReference(s.ImageRepository()+"@"+lastDigest, name.Insecure)
	img, err := remote.Image(ref, registryAuth(s))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(imageSize(b, img))/1e6, "image-MB")

	before := count.uploads.Load()
	res, err := c.Trigger(ctx, "master", lastCommit)
	if err != nil || res.Queued {
		b.Fatalf("re-trigger: queued=%v err=%v", res != nil && res.Queued, err)
	}
	b.ReportMetric(float64(count.uploads.Load()-before), "retrigger-blob-uploads")
}
