package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/builder"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/cosign"
	"github.com/ferryhq/ferry/internal/cosigntest"
	"github.com/ferryhq/ferry/oci"
)

// TestProvenance: every build that passed its tests is signed, in formats
// the real cosign CLI verifies with ferry's public key; and the attacks of
// issue 12 are refused with the reason recorded and nothing deployed: the
// previous build's manifest planted under a new commit's tag (whose tests
// fail), an image planted under a commit's tag and signed by cosign with
// another key, a digest re-tagged by hand under `latest` before a
// restart, and the running digest's signature replaced by another key's
// before a restart.
func TestProvenance(t *testing.T) {
	t.Parallel()
	cli := cosigntest.New(t)
	ctx := context.Background()
	repo := newRepo(t, "testdata/tiny")
	first := repo.Head()
	data := t.TempDir()
	runtime := `runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`
	yaml := strings.Replace(tinyConfig(repo.Dir, data, ""), "runtime: { local: { listen: 127.0.0.1:0 } }", runtime, 1)
	s := start(t, yaml, Options{})
	c := newClient(t, s)

	b1 := waitBuild(t, s, first, 3*time.Minute)
	if b1.State != ferry.BuildSucceeded {
		t.Fatalf("first build = %s (%s), want succeeded", b1.State, b1.Reason)
	}
	if st := stepOf(b1.Steps, builder.StepSign); st.State != ferry.StepSucceeded {
		t.Errorf("sign step = %s (%s), want succeeded", st.State, st.Error)
	}
	if !hasLine(logLines(t, s, b1.ID), builder.StepSign, "signed "+ferry.ShortDigest(b1.Digest)) {
		t.Errorf("the sign step's log does not say it signed %s:\n%s", b1.Digest, dumpLog(logLines(t, s, b1.ID)))
	}
	waitDeployed(t, c, "dev", first)
	wantDevServes(t, c, first)

	// The real cosign CLI accepts ferry's image with the key ferry made.
	user, password := s.registry.Credentials()
	cli.Login(t, s.registry.Host(), user, password)
	ferryPub := filepath.Join(data, cosign.PublicKeyFile)
	ref := s.ImageRepository() + "@" + b1.Digest
	cli.Run(t, "verify", "--key", ferryPub, "--insecure-ignore-tlog", "--allow-http-registry", ref)
	if out := cli.Run(t, "verify-attestation", "--key", ferryPub, "--type", "slsaprovenance", "--insecure-ignore-tlog", "--allow-http-registry", ref); !strings.Contains(out, `"payloadType":"application/vnd.in-toto+json"`) {
		t.Errorf("cosign verify-attestation printed %q, want the DSSE envelope", out)
	}

	pub, err := oci.NewPublisher(s.ImageRepository(), oci.WithBasicAuth(user, password))
	if err != nil {
		t.Fatal(err)
	}

	// 1. The attack: the first build's (signed) manifest put under
	// the next commit's tag, a commit whose tests fail. It is not adopted:
	// its attestation names the first commit; the tests run and fail.
	repo.Write("broken_test.go", "package main\n\nimport \"testing\"\n\nfunc TestBroken(t *testing.T) { t.Fatal(\"broken\") }\n")
	second := repo.CommitAll("break the tests")
	if err := pub.Tag(ctx, b1.Digest, ferry.CommitTag(second)); err != nil {
		t.Fatal(err)
	}
	b2 := trigger(t, s, second)
	if b2.State != ferry.BuildFailed || !strings.Contains(b2.Reason, "tests failed") {
		t.Errorf("build of the commit with a planted manifest = %s (%s), want failed by its tests", b2.State, b2.Reason)
	}
	wantEvent(t, s, "build.adopt-refused", b2.ID, "names commit "+ferry.ShortSHA(first)+", but the ledger's build")

	// 2. An image planted under a commit's tag, signed by cosign with
	// another key: not adopted; the commit is built, and its tag moved to
	// the image ferry made.
	planted := pushRandomImage(t, pub)
	dir := t.TempDir()
	cli.GenerateKeyPair(t, dir, "other")
	cli.Run(t, "sign", "--key", filepath.Join(dir, "other.key"), "--tlog-upload=false", "--yes", "--allow-http-registry", s.ImageRepository()+"@"+planted)
	repo.Write("broken_test.go", "package main\n")
	third := repo.CommitAll("fix the tests")
	if err := pub.Tag(ctx, planted, ferry.CommitTag(third)); err != nil {
		t.Fatal(err)
	}
	b3 := trigger(t, s, third)
	if b3.State != ferry.BuildSucceeded || b3.Digest == planted {
		t.Fatalf("build of the commit with a planted image = %s (%s) digest %s, want succeeded with its own image, not %s", b3.State, b3.Reason, b3.Digest, planted)
	}
	wantEvent(t, s, "build.adopt-refused", b3.ID, "signed, but not with ferry's key")
	if st := stepOf(b3.Steps, builder.StepTest); st.State != ferry.StepSucceeded {
		t.Errorf("test step = %s, want succeeded (run, not skipped)", st.State)
	}
	wantImage(t, s, s.ImageRepository(), third, b3.Digest)
	waitDeployed(t, c, "dev", third)

	// 3. The planted digest re-tagged by hand under latest, then a
	// restart: ferry restores what the ledger says dev runs.
	if err := pub.Tag(ctx, planted, "latest"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = start(t, yaml, Options{})
	c = newClient(t, s)
	wantDevServes(t, c, third)

	// 4. The running digest's signature replaced by the planted image's
	// (another key's), then a restart: the restore is refused, with the
	// reason, and the digest is not started.
	pub, err = oci.NewPublisher(s.ImageRepository(), oci.WithBasicAuth(s.registry.Credentials())) // the registry's port moved
	if err != nil {
		t.Fatal(err)
	}
	sig, err := pub.Resolve(ctx, cosign.SignatureTag(planted))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Tag(ctx, sig, cosign.SignatureTag(b3.Digest)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = start(t, yaml, Options{})
	waitFor(t, time.Minute, "the refused restore", func() bool { return len(events(t, s, "environment.restore-failed")) > 0 })
	refused := events(t, s, "deployment.refused")[0]
	if refused.Commit != third || !strings.Contains(refused.Reason, "refused: "+ferry.ShortDigest(b3.Digest)+" is signed, but not with ferry's key") {
		t.Errorf("deployment.refused = %+v, want one for %s saying its signature is not ferry's", refused, ferry.ShortSHA(third))
	}
	wantEventKind(t, s, "environment.restore-failed", "refused: ")
	st, err := newClient(t, s).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Environments[0]; got.Replicas.Ready != 0 {
		t.Errorf("dev has %d ready replicas after the refused restore, want 0", got.Replicas.Ready)
	}
}

// trigger queues commit's build by hand and waits for its end.
func trigger(t *testing.T, s *Server, commit string) *ferry.Build {
	t.Helper()
	if _, _, err := s.Trigger(context.Background(), "master", commit, "test"); err != nil {
		t.Fatal(err)
	}
	return waitBuild(t, s, commit, 3*time.Minute)
}

// pushRandomImage pushes a small random image, as someone with the
// registry's credentials could, and returns its digest.
func pushRandomImage(t *testing.T, pub *oci.Publisher) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := pub.Push(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// wantDevServes waits until dev's URL answers /version with commit.
func wantDevServes(t *testing.T, c *client.Client, commit string) {
	t.Helper()
	var got string
	waitFor(t, time.Minute, "dev to serve "+ferry.ShortSHA(commit), func() bool {
		st, err := c.Status(context.Background())
		if err != nil || len(st.Environments) == 0 || st.Environments[0].URL == "" {
			return false
		}
		resp, err := http.Get(st.Environments[0].URL + "/version")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v struct{ Commit string }
		if json.NewDecoder(resp.Body).Decode(&v) != nil {
			return false
		}
		got = v.Commit
		return got == commit
	})
}

// wantEventKind checks that an event of kind has a reason containing reason.
func wantEventKind(t *testing.T, s *Server, kind, reason string) {
	t.Helper()
	for _, e := range events(t, s, kind) {
		if strings.Contains(e.Reason, reason) {
			return
		}
	}
	t.Errorf("no %s event with a reason containing %q; events: %+v", kind, reason, events(t, s, kind))
}

// TestKubernetesRefusesUnverified: the check is the controller's, so it
// holds on Kubernetes too. dev runs A in a Deployment; A's signature and
// attestation are replaced by another key's, and ferry restarts: the
// restore is refused with the reason and the Deployment is not touched —
// A's pods keep running. A new build B then rolls out as usual.
func TestKubernetesRefusesUnverified(t *testing.T) {
	k := newCluster(t)
	ns := k.Namespace("ferry-sign-dev")
	k.deployment(ns, "tiny", 2)
	repo := newRepo(t, "testdata/tiny")
	onKube := fmt.Sprintf("runtime: { kubernetes: { namespace: %s, deployment: tiny, container: app, kubeconfig: %s } }", ns, k.Kubeconfig)
	yaml := strings.Replace(tinyConfig(repo.Dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }", onKube, 1)
	s := start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
	ctx := context.Background()

	a := repo.Head()
	ba := waitBuild(t, s, a, 5*time.Minute)
	waitDeployed(t, newClient(t, s), "dev", a)
	imageA := s.ImageRepository() + "@" + ba.Digest
	if got, _ := k.image(ns, "tiny"); got != imageA {
		t.Fatalf("dev's Deployment runs %s, want %s", got, imageA)
	}

	other, err := cosign.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := oci.NewPublisher(s.ImageRepository(), oci.WithBasicAuth(s.registry.Credentials()))
	if err != nil {
		t.Fatal(err)
	}
	if err := cosign.NewSigner(other, pub).Sign(ctx, ba.Digest, ferry.Provenance{Commit: a}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
	waitFor(t, time.Minute, "the refused restore", func() bool { return len(events(t, s, "environment.restore-failed")) > 0 })
	wantEventKind(t, s, "deployment.refused", "refused: "+ferry.ShortDigest(ba.Digest)+" is signed, but not with ferry's key")
	if got, _ := k.image(ns, "tiny"); got != imageA {
		t.Errorf("after the refused restore dev's Deployment runs %s, want %s untouched", got, imageA)
	}
	waitFor(t, 30*time.Second, "A's 2 pods still ready", func() bool { on, other := k.readyOn(ns, "tiny", imageA); return on == 2 && other == 0 })

	repo.Write("release.txt", "B\n")
	b := repo.CommitAll("release B")
	if _, _, err := s.Trigger(ctx, "master", b, "test"); err != nil {
		t.Fatal(err)
	}
	bb := waitBuild(t, s, b, 5*time.Minute)
	waitDeployed(t, newClient(t, s), "dev", b)
	if got, _ := k.image(ns, "tiny"); got != s.ImageRepository()+"@"+bb.Digest {
		t.Errorf("dev's Deployment runs %s after B, want B's %s", got, bb.Digest)
	}
}
