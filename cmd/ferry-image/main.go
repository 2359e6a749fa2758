// Command ferry-image builds ferry's own image with ferry's daemonless
// builder (package ferryimage), pushes it and signs it. main only wires.
//
//	go run ./cmd/ferry-image -push registry.example.com/ferry -key signing.key
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/cosign"
	"github.com/ferryhq/ferry/internal/ferryimage"
	"github.com/ferryhq/ferry/oci"
)

func main() {
	push := flag.String("push", "", "repository to push to, host/path (required)")
	key := flag.String("key", "", "PEM private key to sign with (required); its password in $FERRY_IMAGE_KEY_PASSWORD")
	version := flag.String("version", "", "version label and tag (default: git describe)")
	insecure := flag.Bool("insecure", false, "talk plain HTTP to the registry (loopback registries get it anyway)")
	flag.Parse()
	if *push == "" || *key == "" {
		fmt.Fprintln(os.Stderr, "ferry-image: -push and -key are required")
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *push, *key, *version, *insecure); err != nil {
		fmt.Fprintln(os.Stderr, "ferry-image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, repo, keyPath, version string, insecure bool) error {
	commit, err := git(ctx, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	if dirty, _ := git(ctx, "status", "--porcelain"); dirty != "" {
		return fmt.Errorf("the worktree has changes: build ferry's image from a clean commit")
	}
	when, err := git(ctx, "show", "-s", "--format=%cI", "HEAD")
	if err != nil {
		return err
	}
	created, err := time.Parse(time.RFC3339, when)
	if err != nil {
		return fmt.Errorf("commit time %q: %w", when, err)
	}
	if version == "" {
		if version, err = git(ctx, "describe", "--tags", "--always"); err != nil {
			return err
		}
	}
	source, _ := git(ctx, "remote", "get-url", "origin")
	cfg := ferryimage.Config{ModuleDir: ".", Commit: commit, Created: created, Source: source, Version: version}

	pem, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	k, err := cosign.ParseKey(pem, []byte(os.Getenv("FERRY_IMAGE_KEY_PASSWORD")))
	if err != nil {
		return fmt.Errorf("%s: %w", keyPath, err)
	}
	var opts []oci.Option
	if insecure {
		opts = append(opts, oci.WithInsecure())
	}
	pub, err := oci.NewPublisher(repo, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "building ferry %s (%s)…\n", version, commit[:12])
	img, err := ferryimage.Build(ctx, cfg, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pushing to %s and signing…\n", repo)
	digest, err := ferryimage.Publish(ctx, img, cfg, pub, cosign.NewSigner(k, pub), time.Now)
	if err != nil {
		return err
	}
	fmt.Println(pub.Ref(digest))
	return nil
}

func git(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
