package oci

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// helloBinary compiles testdata/hello as BuildGo would and returns the
// binary's bytes.
func helloBinary(b *testing.B) []byte {
	b.Helper()
	dir := helloModule(b)
	bin := filepath.Join(b.TempDir(), "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", bin, "./cmd/hello")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func assembleHello(b *testing.B, binary, certs []byte, n int) v1.Image {
	b.Helper()
	g := helloBuild("", commitN(n))
	g.GOOS, g.GOARCH = "linux", "amd64"
	img, err := assemble(g, "hello", binary, certs)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := img.Digest(); err != nil {
		b.Fatal(err)
	}
	return img
}

// BenchmarkAssemble measures turning a compiled binary into an image with
// its digest computed (layers compressed and hashed), without go build.
func BenchmarkAssemble(b *testing.B) {
	binary := helloBinary(b)
	certs, err := os.ReadFile(HostCACerts)
	if err != nil {
		b.Fatal(err)
	}
	var img v1.Image
	for i := 0; b.Loop(); i++ {
		img = assembleHello(b, binary, certs, i)
	}
	b.ReportMetric(float64(len(binary))/(1<<20), "MiB-binary")
	b.ReportMetric(float64(imageSize(b, img))/(1<<20), "MiB-image")
}

// BenchmarkPush measures pushing images to the embedded registry: "new"
// uploads every blob to a fresh repository, "again" pushes an image that is
// already there.
func BenchmarkPush(b *testing.B) {
	binary := helloBinary(b)
	certs, err := os.ReadFile(HostCACerts)
	if err != nil {
		b.Fatal(err)
	}
	srv := startRegistry(b)
	img := assembleHello(b, binary, certs, 0)
	b.Run("new", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			p := newPublisher(b, fmt.Sprintf("%s/bench/new%d", srv.Host(), i))
			if _, err := p.Push(b.Context(), img, "v1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("again", func(b *testing.B) {
		cnt := &counter{}
		p := newPublisher(b, srv.Host()+"/bench/again", WithTransport(cnt))
		if _, err := p.Push(b.Context(), img, "v1"); err != nil {
			b.Fatal(err)
		}
		cnt.reset()
		for b.Loop() {
			if _, err := p.Push(b.Context(), img, "v1"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cnt.blobWrites())/float64(b.N), "blob-writes/op")
	})
}
