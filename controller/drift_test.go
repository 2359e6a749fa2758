package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// driftGolden holds every kind of drift Check reports, with its fix, as
// testdata/drift.golden.json; cli's tests parse each fix with the real
// command tree and render the file as `ferry status --check` prints it.
const driftGolden = "testdata/drift.golden.json"

// TestDriftGolden: a release, then every disagreement ferry can see made
// behind its back (dev's registry tag and git tag moved, a replica lost;
// prod's live tag and release branch moved), a runtime that cannot report,
// and a rollout in progress. The drifts and their fixes are the golden
// file (go test ./controller -run TestDriftGolden -update rewrites it).
func TestDriftGolden(t *testing.T) {
	f := newRelFixture(t, 0)
	ctx := context.Background()
	a := f.commit("master", "a")
	f.inDev(a)
	d, err := f.promote("")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return f.tags.get("live") == a.Digest }, "live")
	waitUntil(t, func() bool { return f.originRef("refs/tags/env/prod") == a.Commit }, "env/prod")
	if drifts, err := f.ctrl.Check(ctx); err != nil || len(drifts) != 0 {
		t.Fatalf("Check after a clean release = %+v, %v; want none", drifts, err)
	}

	b := f.commit("feature", "b") // not master's: dev has no newer build to converge on
	f.git(f.work, "push", "-q", "origin", b.Commit+":refs/heads/release")
	f.git("", "--git-dir="+f.origin, "tag", "-d", "env/dev")
	f.git(f.work, "tag", "-a", "-m", "forged", "RC20990101_0003", b.Commit) // a release tag ferry never made
	f.git(f.work, "push", "-q", "origin", "refs/tags/RC20990101_0003")
	if err := f.tags.Tag(ctx, b.Digest, "latest"); err != nil {
		t.Fatal(err)
	}
	if err := f.tags.Tag(ctx, b.Digest, "live"); err != nil {
		t.Fatal(err)
	}
	f.dev.mu.Lock()
	f.dev.running.Replicas = 1
	f.dev.mu.Unlock()
	all, err := f.ctrl.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}

	f.prod.mu.Lock()
	f.prod.statusErr = ferry.Errorf(ferry.EUNAVAILABLE, "the cluster did not answer")
	f.prod.mu.Unlock()
	drifts, err := f.ctrl.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, dr := range drifts {
		if dr.What == "runtime" {
			all = append(all, dr)
		}
	}
	f.prod.mu.Lock()
	f.prod.statusErr = nil
	f.prod.gate = make(chan struct{})
	f.prod.mu.Unlock()
	for len(f.prod.entered) > 0 { // the release's rollouts
		<-f.prod.entered
	}
	scale, err := f.ctrl.Scale(ctx, "prod", 3, "ada", "")
	if err != nil {
		t.Fatal(err)
	}
	<-f.prod.entered
	drifts, err = f.ctrl.Check(ctx)
	close(f.prod.gate)
	f.wait(scale.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, dr := range drifts {
		if dr.What == "rollout" {
			all = append(all, dr)
		}
	}

	got, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// Commits depend on the clock git ran at: name them by their subject.
	got = []byte(strings.NewReplacer(
		a.Commit, strings.Repeat("a", 40), b.Commit, strings.Repeat("b", 40),
		ferry.ShortSHA(a.Commit), strings.Repeat("a", 12), ferry.ShortSHA(b.Commit), strings.Repeat("b", 12),
	).Replace(string(got)) + "\n")
	if *update {
		if err := os.WriteFile(driftGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(driftGolden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Check =\n%s\nwant (%s)\n%s", got, filepath.Base(driftGolden), want)
	}
	for _, want := range []string{"registry tag latest", "git tag env/dev", "replicas ready", "registry tag live", "git branch release", "git tag RC20990101_0003", "runtime", "rollout"} {
		if !bytes.Contains(got, []byte(`"What": "`+want+`"`)) {
			t.Errorf("the drifts lack %q:\n%s", want, got)
		}
	}

	// The fixes work: once the lost replica is back (what `ferry logs dev`
	// would lead to) and the forged tag deleted on the git server, running
	// the suggested commands leaves no drift.
	f.git("", "--git-dir="+f.origin, "tag", "-d", "RC20990101_0003")
	f.dev.mu.Lock()
	f.dev.running.Replicas = 2
	f.dev.mu.Unlock()
	sc, err := f.ctrl.Scale(ctx, "dev", 2, "ada", "") // ferry scale dev 2
	if err != nil {
		t.Fatal(err)
	}
	f.wait(sc.ID)
	rb, err := f.ctrl.Rollback(ctx, "prod", d.Release, "ada", "") // ferry rollback prod --to RC…
	if err != nil {
		t.Fatalf("the suggested ferry rollback prod --to %s: %v", d.Release, err)
	}
	if got := f.wait(rb.ID); got.State != ferry.DeploymentSucceeded {
		t.Fatalf("the suggested rollback = %s (%s), want succeeded", got.State, got.Error)
	}
	waitUntil(t, func() bool {
		drifts, err := f.ctrl.Check(ctx)
		return err == nil && len(drifts) == 0
	}, "no drift after the suggested fixes")
}
