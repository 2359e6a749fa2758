// Package ferryimage builds ferry's own image with ferry's daemonless
// builder: the static ferryd binary (oci.BuildGo, non-root, reproducible)
// and what a server runs builds with, copied from the building machine: a
// shell, git with its https helper and their shared libraries, and the Go
// toolchain. The same commit and the same tools give the same digest.
package ferryimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/oci"
)

// Config says what to build.
type Config struct {
	// ModuleDir is ferry's module, a clean worktree of Commit.
	ModuleDir string
	// Commit (40 hex), its time, the repository URL and the version
	// label (cli.version) stamp the image.
	Commit  string
	Created time.Time
	Source  string
	Version string
	// GOROOT is the toolchain copied to /usr/local/go: `go env GOROOT`
	// when empty.
	GOROOT string
	// Tools are the programs copied with their shared libraries: Tools
	// when nil.
	Tools []string
}

// Tools are what a ferry server runs besides itself: the shell build
// commands run in and the few commands they commonly call, git and the
// helpers it fetches over http(s) with.
var Tools = []string{
	"/bin/sh", "/usr/bin/cat", "/usr/bin/cp", "/usr/bin/env", "/usr/bin/ls", "/usr/bin/mkdir", "/usr/bin/mv", "/usr/bin/rm", "/usr/bin/sleep",
	"/usr/bin/git", "/usr/lib/git-core/git-remote-http", "/usr/lib/git-core/git-remote-https",
}

// GoRoot is where the toolchain is in the image.
const GoRoot = "/usr/local/go"

// Build builds the image; log hears the go build's output.
func Build(ctx context.Context, cfg Config, log io.Writer) (v1.Image, error) {
	if cfg.GOROOT == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
		if err != nil {
			return nil, fmt.Errorf("go env GOROOT: %w", err)
		}
		cfg.GOROOT = strings.TrimSpace(string(out))
	}
	if cfg.Tools == nil {
		cfg.Tools = Tools
	}
	img, err := oci.BuildGo(ctx, oci.GoBuild{
		Dir: cfg.ModuleDir, Main: "./cmd/ferryd", Ldflags: "-X github.com/ferryhq/ferry/cli.version=" + cfg.Version,
		Commit: cfg.Commit, Source: cfg.Source, Version: cfg.Version, Created: cfg.Created,
	}, log)
	if err != nil {
		return nil, err
	}
	toolchain, err := oci.HostLayer([]oci.HostPath{{Host: cfg.GOROOT, Image: GoRoot, Skip: notNeeded}})
	if err != nil {
		return nil, fmt.Errorf("toolchain layer: %w", err)
	}
	files, err := withLibraries(ctx, cfg.Tools)
	if err != nil {
		return nil, err
	}
	paths := make([]oci.HostPath, len(files))
	for i, f := range files {
		paths[i] = oci.HostPath{Host: f}
	}
	paths = append(paths, oci.HostPath{Host: "/usr/lib/git-core"}, oci.HostPath{Host: "/usr/share/git-core", Skip: func(rel string) bool { return rel == "contrib" }})
	tools, err := oci.HostLayer(paths)
	if err != nil {
		return nil, fmt.Errorf("tools layer: %w", err)
	}
	created := cfg.Created.UTC()
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: toolchain, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "ferry-image: the Go toolchain, " + GoRoot}},
		mutate.Addendum{Layer: tools, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "ferry-image: " + strings.Join(cfg.Tools, ", ") + " and their libraries"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config.Env = []string{
		"PATH=/app:" + GoRoot + "/bin:/usr/local/bin:/usr/bin:/bin",
		"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		// The root filesystem is read-only in the cluster: homes and
		// caches live on the data volume (deploy/ferry).
		"HOME=/var/lib/ferry",
		"GOROOT=" + GoRoot, // the go command finds it without /proc too
		"GOTOOLCHAIN=local",
		"GOTELEMETRY=off",
	}
	return mutate.ConfigFile(img, cf)
}

// notNeeded leaves out of the toolchain what builds never read: the
// sources of the go command and its tools (their binaries stay), the
// tools builds do not run, tests and test data, documentation, and the API
// history.
func notNeeded(rel string) bool {
	switch rel {
	case "test", "doc", "api", "misc", "src/cmd":
		return true
	}
	if dir, tool := path.Split(rel); dir == "pkg/tool/linux_amd64/" || dir == "pkg/tool/linux_arm64/" {
		switch tool {
		case "addr2line", "dist", "distpack", "doc", "fix", "nm", "objdump", "pprof", "preprofile", "trace":
			return true
		}
	}
	return path.Base(rel) == "testdata"
}

// lddPath is one library path in ldd's output: "libz.so.1 => /lib/…" or
// the loader's "/lib64/ld-linux-x86-64.so.2 (0x…)".
var lddPath = regexp.MustCompile(`(?m)(?:=>\s+|^\s+)(/\S+)\s+\(0x`)

// withLibraries returns programs and the shared libraries they load (ldd),
// sorted.
func withLibraries(ctx context.Context, programs []string) ([]string, error) {
	set := map[string]bool{}
	for _, p := range programs {
		set[p] = true
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "ldd", p)
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			if strings.Contains(out.String(), "not a dynamic executable") {
				continue
			}
			return nil, fmt.Errorf("ldd %s: %w", p, err)
		}
		for _, m := range lddPath.FindAllStringSubmatch(out.String(), -1) {
			set[filepath.Clean(m[1])] = true
		}
	}
	files := make([]string, 0, len(set))
	for f := range set {
		files = append(files, f)
	}
	slices.Sort(files)
	return files, nil
}

// Registry is where Publish pushes.
type Registry interface {
	Push(ctx context.Context, img v1.Image, tags ...string) (string, error)
	Repo() string
}

// Signer signs a pushed digest with its provenance (cosign.Signer).
type Signer interface {
	Sign(ctx context.Context, digest string, p ferry.Provenance) error
}

// Publish pushes img under the version's tag and sha-<commit>, then signs
// it with a provenance naming this builder, as every image ferry builds
// is signed. It returns the digest.
func Publish(ctx context.Context, img v1.Image, cfg Config, reg Registry, signer Signer, now func() time.Time) (string, error) {
	started := now()
	tags := []string{"sha-" + cfg.Commit}
	if cfg.Version != "" {
		tags = append(tags, cfg.Version)
	}
	digest, err := reg.Push(ctx, img, tags...)
	if err != nil {
		return "", fmt.Errorf("push ferry's image: %w", err)
	}
	p := ferry.Provenance{
		App: "ferry", Commit: cfg.Commit, Branch: "", Source: cfg.Source, Image: reg.Repo(),
		TestResult: ferry.TestSkipped, Builder: "ferry-image " + cfg.Version, Started: started, Finished: now(),
	}
	if err := signer.Sign(ctx, digest, p); err != nil {
		return "", fmt.Errorf("sign ferry's image %s: %w", digest, err)
	}
	return digest, nil
}
