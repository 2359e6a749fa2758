package local

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/lb"
)

// BenchmarkRollout measures a rolling update with the default bounds (one
// surge replica, none unavailable) and the balancer's default readiness
// checks: Apply of a new digest until every replica runs it, old ones
// drained and stopped. Each iteration alternates between two digests.
//
//	go test -run '^$' -bench Rollout -benchtime 30x -count 3 ./runtime/local/
func BenchmarkRollout(b *testing.B) {
	im := appImages(b)
	modes := []string{"plain"}
	if isRoot() {
		modes = append(modes, "runc")
	}
	for _, mode := range modes {
		for _, n := range []int{2, 4} {
			b.Run(fmt.Sprintf("%s/replicas=%d", mode, n), func(b *testing.B) {
				benchRollout(b, im, mode == "plain", n)
			})
		}
	}
}

func benchRollout(b *testing.B, im images, noSandbox bool, n int) {
	tg := newTarget(b, im, func(c *Config) {
		c.Logger = slog.New(slog.DiscardHandler)
		c.Balancer = lb.Config{}
		c.NoSandbox = noSandbox
	})
	apply(b, tg, spec(im.v1, n))
	digests := []string{im.v2, im.v1}
	i := 0
	for b.Loop() {
		apply(b, tg, spec(digests[i%2], n))
		i++
	}
	if st := status(b, tg); st.Ready != n || st.Digest != digests[(i-1)%2] {
		b.Fatalf("Status = %+v after the rollouts", st)
	}
}

// BenchmarkRuncRun measures what runc costs a replica's start: `runc run`
// of a container whose app exits at once, with ferry's config.json and
// with parts of it left out; cpu-ms/op is the CPU time of runc and its
// children.
//
//	go test -run '^$' -bench RuncRun -benchtime 20x ./runtime/local/
func BenchmarkRuncRun(b *testing.B) {
	requireRunc(b)
	im := appImages(b)
	dir := b.TempDir()
	store := &imageStore{dir: filepath.Join(dir, "images"), src: im.src, log: slog.New(slog.DiscardHandler), now: time.Now}
	img, err := store.get(b.Context(), im.crash)
	if err != nil {
		b.Fatal(err)
	}
	bin, err := exec.LookPath("runc")
	if err != nil {
		b.Fatal(err)
	}
	rc, err := newRunc(bin, dir, "dev", idBase, ferry.Resources{}.WithDefaults(), true, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer rc.close()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		edit func(*ociSpec)
	}{
		{"ferry", func(*ociSpec) {}},
		{"seccomp-all-abis", func(s *ociSpec) {
			s.Linux.Seccomp.Architectures = []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}
		}},
		{"no-seccomp", func(s *ociSpec) { s.Linux.Seccomp = nil }},
		{"no-seccomp-no-limits", func(s *ociSpec) { s.Linux.Seccomp, s.Linux.Resources = nil, specResources{} }},
	} {
		b.Run(v.name, func(b *testing.B) {
			c := container{ID: "dev-1", Rootfs: img.rootfs, Data: data, Argv: []string{"/app/app"}, Env: append(img.config.Env, "CRASH=1")}
			s := rc.spec(c)
			v.edit(&s)
			bundle := filepath.Join(dir, "bundle-"+v.name)
			raw, _ := json.Marshal(s)
			if err := os.MkdirAll(bundle, 0o700); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o600); err != nil {
				b.Fatal(err)
			}
			// Wall-clock time depends on the machine's other load; the
			// CPU time of runc and its children (the app's included) less.
			var cpu time.Duration
			for b.Loop() {
				cmd := rc.command(b.Context(), "run", "--bundle", bundle, c.ID)
				out, err := cmd.CombinedOutput()
				if !strings.Contains(string(out), "crashing at start") {
					b.Fatalf("runc run: %v\n%s", err, out)
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}
