// Command pushimage stands in for a user's build command (docker build &&
// docker push): it builds a one-layer image recording $FERRY_COMMIT and
// pushes it to $FERRY_IMAGE.
package main

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pushimage:", err)
		os.Exit(1)
	}
}

func run() error {
	ref, err := name.ParseReference(os.Getenv("FERRY_IMAGE"))
	if err != nil {
		return fmt.Errorf("FERRY_IMAGE: %w", err)
	}
	layer := static.NewLayer([]byte("commit "+os.Getenv("FERRY_COMMIT")+"\n"), types.OCIUncompressedLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{"org.opencontainers.image.revision": os.Getenv("FERRY_COMMIT")}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	fmt.Println("pushing", ref)
	if err := remote.Write(ref, img); err != nil {
		return err
	}
	d, _ := img.Digest()
	fmt.Println("pushed", d)
	return nil
}
