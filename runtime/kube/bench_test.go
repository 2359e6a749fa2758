package kube

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkRollout4Replicas measures Apply rolling a Deployment of 4
// replicas (maxSurge 1, maxUnavailable 0) to a new digest on the test
// cluster, from the patch until every replica is updated and ready and
// the old ones are gone.
func BenchmarkRollout4Replicas(b *testing.B) {
	c := testCluster(b)
	ns := c.namespace()
	c.create(testDeployment(ns, spec(newDigest(), 1, 4)))
	kt := c.target(ns, func(cfg *Config) { cfg.Logger = slog.New(slog.DiscardHandler) })
	ctx := context.Background()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if err := kt.Apply(ctx, spec(newDigest(), int64(i+2), 4), nil); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/rollout")
}
