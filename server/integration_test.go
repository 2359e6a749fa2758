package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/builder"
)

// tinyAPI is testdata/tiny with a greeting API: GET /hello/{name} answers
// the JSON greeting, or 500 when broken, while /version stays fine either
// way: a commit can pass every probe and still be broken.
func tinyAPI(broken bool) string {
	return `package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

var commit = "unknown"

const broken = ` + fmt.Sprint(broken) + `

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	flag.Parse()
	http.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "{\"commit\":%q}\n", commit)
	})
	http.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		if broken {
			log.Printf("ferry-marker: GET /hello/%s broke", r.PathValue("name"))
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"message\":\"Hello, %s!\"}\n", r.PathValue("name"))
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
`
}

// TestIntegrationStopsABrokenAPI: with build.integration, each image runs
// on trial before it may be deployed. A commit whose /version is fine but
// whose API answers 500 fails the build at the integration step, with the
// check and the trial's output in its log; it gets no commit tags, dev
// keeps the previous commit, and the trial leaves nothing behind.
func TestIntegrationStopsABrokenAPI(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	repo.Write("main.go", tinyAPI(false))
	good := repo.CommitAll("a greeting API")
	dataDir := t.TempDir()
	integration := `  integration:
    checks:
      - { http: GET /version, expect: 200 }
      - { http: GET /hello/ada, json: { field: message, contains: "Hello, ada" } }
    timeout: 1m
`
	yaml := strings.Replace(tinyConfig(repo.Dir, dataDir, integration), "runtime: { local: { listen: 127.0.0.1:0 } }",
		`runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`, 1)
	s := start(t, yaml, Options{})
	c := newClient(t, s)

	b := waitBuild(t, s, good, 3*time.Minute)
	if b.State != ferry.BuildSucceeded {
		t.Fatalf("build of the good commit = %s (%s), want succeeded", b.State, b.Reason)
	}
	if st := stepOf(b.Steps, builder.StepIntegration); st.State != ferry.StepSucceeded {
		t.Errorf("integration step of the good commit = %s (%s), want succeeded", st.State, st.Error)
	}
	if log := logLines(t, s, b.ID); !hasLine(log, builder.StepIntegration, `passed GET /hello/ada`) {
		t.Errorf("the integration step's log does not say the check passed; log:\n%s", dumpLog(log))
	}
	wantImage(t, s, s.ImageRepository(), good, b.Digest)
	waitDeployed(t, c, "dev", good)

	repo.Write("main.go", tinyAPI(true))
	bad := repo.CommitAll("break the greeting")
	if _, err := c.Trigger(context.Background(), "master", ""); err != nil {
		t.Fatal(err)
	}
	b = waitBuild(t, s, bad, 3*time.Minute)
	if b.State != ferry.BuildFailed || !strings.Contains(b.Reason, "integration check failed: GET /hello/ada: status 500, want 200") {
		t.Fatalf("build of the broken commit = %s (%q), want failed at the integration check", b.State, b.Reason)
	}
	wantSteps(t, b, map[string]ferry.StepState{
		builder.StepCheckout: ferry.StepSucceeded, builder.StepTest: ferry.StepSucceeded,
		builder.StepBuild: ferry.StepSucceeded, builder.StepPush: ferry.StepSucceeded, builder.StepSign: ferry.StepSucceeded,
		builder.StepIntegration: ferry.StepFailed, builder.StepTag: ferry.StepPending,
	})
	if log := logLines(t, s, b.ID); !hasLine(log, builder.StepIntegration, "ferry-marker: GET /hello/ada broke") {
		t.Errorf("the integration step's log does not hold the trial replica's output; log:\n%s", dumpLog(log))
	}
	wantNoImage(t, s, s.ImageRepository(), bad)
	if st, err := c.Status(context.Background()); err != nil || st.Environments[0].Commit != good {
		t.Errorf("dev status after the broken build = %+v, %v; want it on %.12s", st, err, good)
	}
	left, _ := filepath.Glob(filepath.Join(dataDir, "envs", "trial_*"))
	if len(left) > 0 {
		t.Errorf("trial directories left behind: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "envs", "dev")); err != nil {
		t.Errorf("dev's own directory: %v", err)
	}
}
