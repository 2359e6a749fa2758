package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// TestRolloutRefusesDigestThatDoesNotVerify: a digest whose signature or
// attestation does not verify is refused before the runtime sees it: the
// deployment fails with the reason, a deployment.refused event says it,
// nothing is reverted (nothing changed) and the tags stay.
func TestRolloutRefusesDigestThatDoesNotVerify(t *testing.T) {
	tests := []struct {
		name string
		// bad returns the build handed to BuildSucceeded.
		bad  func(f *fixture) *ferry.Build
		want string
	}{
		{"signed with another key", func(f *fixture) *ferry.Build {
			b := f.build()
			f.verify.forge(b.Digest, "sha256:… is signed, but not with ferry's key")
			return b
		}, "refused: sha256:… is signed, but not with ferry's key"},
		{"attestation of another commit", func(f *fixture) *ferry.Build {
			b := f.build()
			f.verify.forge(b.Digest, "the attestation names commit 000000000bad")
			return b
		}, "refused: the attestation names commit 000000000bad"},
		{"no build of the commit in the ledger", func(f *fixture) *ferry.Build {
			return &ferry.Build{App: "app", Commit: fmt.Sprintf("%040x", 999), Branch: "master", Digest: fmt.Sprintf("sha256:%064x", 999)}
		}, "refused: no build in the ledger made"},
		{"a digest the ledger's build did not make", func(f *fixture) *ferry.Build {
			b := f.build()
			forged := *b
			forged.Digest = fmt.Sprintf("sha256:%064x", 998)
			return &forged
		}, "refused: the ledger's build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil, "")
			good := f.build()
			if d := f.wait(f.deploy(good).ID); d.State != ferry.DeploymentSucceeded {
				t.Fatalf("first deployment = %s (%s), want succeeded", d.State, d.Error)
			}
			f.waitTag("latest", good.Digest)
			bad := tt.bad(f)
			d := f.wait(f.deploy(bad).ID)
			if d.State != ferry.DeploymentFailed || !strings.HasPrefix(d.Error, tt.want) {
				t.Errorf("deployment of %s = %s (%q), want failed with %q", bad.Digest, d.State, d.Error, tt.want)
			}
			if slices.Contains(f.target.appliedDigests(), bad.Digest) {
				t.Errorf("the runtime was asked to apply %s; applied %v", bad.Digest, f.target.appliedDigests())
			}
			if got := f.target.runs().Digest; got != good.Digest {
				t.Errorf("the environment runs %s, want %s unchanged", got, good.Digest)
			}
			if got := f.tags.get("latest"); got != good.Digest {
				t.Errorf("tag latest = %s, want %s", got, good.Digest)
			}
			refused := f.events("deployment.refused")
			if len(refused) != 1 || !strings.Contains(refused[0].Reason, tt.want) {
				t.Errorf("deployment.refused events = %+v, want one with %q", refused, tt.want)
			}
			if back := f.deployments(ferry.DeployAutoRollback); len(back) != 0 {
				t.Errorf("auto-rollback deployments = %d, want none (nothing changed)", len(back))
			}
		})
	}
}

// TestRestoreVerifies: at start, what the ledger says an environment runs
// is verified again before it is restored; a digest that no longer
// verifies is not applied.
func TestRestoreVerifies(t *testing.T) {
	f := newFixture(t, nil, "")
	b := f.build()
	if d := f.wait(f.deploy(b).ID); d.State != ferry.DeploymentSucceeded {
		t.Fatalf("deployment = %s (%s), want succeeded", d.State, d.Error)
	}
	f.stop()
	f.target = newFakeTarget()
	f.verify.forge(b.Digest, "sha256:… has no signature")
	f.start(nil, "")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(f.events("environment.restore-failed")) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if got := f.events("environment.restore-failed"); len(got) != 1 || !strings.Contains(got[0].Reason, "refused: sha256:… has no signature") {
		t.Errorf("environment.restore-failed events = %+v, want one naming the refusal", got)
	}
	if got := f.target.appliedDigests(); len(got) != 0 {
		t.Errorf("the runtime applied %v at start, want nothing", got)
	}
}

func (f *fixture) events(kind string) []ferry.Event {
	f.t.Helper()
	es, err := f.ledger.Events(context.Background(), ledger.EventFilter{App: "app", Kind: kind})
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}

func (f *fixture) deployments(kind ferry.DeploymentKind) []*ferry.Deployment {
	f.t.Helper()
	ds, err := f.ledger.Deployments(context.Background(), ledger.DeploymentFilter{App: "app"})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*ferry.Deployment
	for _, d := range ds {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

func (f *fakeTarget) appliedDigests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}
