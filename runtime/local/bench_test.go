package local

import (
	"fmt"
	"log/slog"
	"testing"

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
