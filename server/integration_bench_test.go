package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/builder"
)

// BenchmarkIntegrationStep measures what the build's integration step
// costs for birthday-app with the demo's checks: the new image started on
// trial with a SQLite database of its own, readiness on /statusz, then
// GET /statusz, PUT a birthday and GET its greeting. Each iteration pushes
// a variant of the birthday package and reads the step's own start and
// finish times from the ledger, beside the sign step's and the whole
// build's.
//
//	go test -run '^$' -bench IntegrationStep -benchtime 5x ./server/
func BenchmarkIntegrationStep(b *testing.B) {
	repo := newRepo(b, "../examples/birthday-app")
	yaml := fmt.Sprintf(`app: birthday-app
dataDir: %s
server: { listen: 127.0.0.1:0 }
registry: { listen: 127.0.0.1:0 }
source: { repo: %s, poll: 0 }
build:
  test: go test ./birthday/...
  go: { main: ./cmd/birthday-app, ldflags: %q }
  integration:
    env: { DATABASE_URL: "sqlite://birthday-trial.db" }
    checks:
      - { http: GET /statusz, expect: 200 }
      - { http: PUT /hello/ferrycheck, headers: { Content-Type: application/json }, body: '{"dateOfBirth":"1990-05-17"}', expect: 204 }
      - { http: GET /hello/ferrycheck, expect: 200, json: { field: message, contains: "Hello, ferrycheck!" } }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:0, readiness: /statusz } }
`, b.TempDir(), repo.Dir, fmt.Sprintf("-X %s.Commit={{.Commit}}", buildinfoPkg))
	s := start(b, yaml, Options{})
	c := newClient(b, s)
	ctx := context.Background()
	if _, err := c.Trigger(ctx, "master", ""); err != nil { // warm the Go caches
		b.Fatal(err)
	}
	if bb := waitBuild(b, s, repo.Head(), 10*time.Minute); bb.State != ferry.BuildSucceeded {
		b.Fatalf("first build %s: %s", bb.State, bb.Reason)
	}

	var integration, sign, total time.Duration
	b.ResetTimer()
	for i := range b.N {
		repo.Write("birthday/bench_variant.go", fmt.Sprintf("package birthday\n\nconst benchVariant = %d\n", i))
		commit := repo.CommitAll(fmt.Sprintf("bench variant %d", i))
		if _, err := c.Trigger(ctx, "master", ""); err != nil {
			b.Fatal(err)
		}
		bb := waitBuild(b, s, commit, 10*time.Minute)
		if bb.State != ferry.BuildSucceeded {
			b.Fatalf("build %s: %s", bb.State, bb.Reason)
		}
		integration += stepTime(b, bb, builder.StepIntegration)
		sign += stepTime(b, bb, builder.StepSign)
		total += bb.FinishedAt.Sub(bb.StartedAt)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(integration.Seconds()*1e3/n, "integration-ms/build")
	b.ReportMetric(sign.Seconds()*1e3/n, "sign-ms/build")
	b.ReportMetric(total.Seconds()/n, "build-s")
}

// stepTime is how long step name of build bb ran; it must have succeeded.
func stepTime(b *testing.B, bb *ferry.Build, name string) time.Duration {
	b.Helper()
	for _, st := range bb.Steps {
		if st.Name == name {
			if st.State != ferry.StepSucceeded {
				b.Fatalf("build %d: step %s is %s: %s", bb.ID, name, st.State, st.Error)
			}
			return st.FinishedAt.Sub(st.StartedAt)
		}
	}
	b.Fatalf("build %d has no step %s", bb.ID, name)
	return 0
}
