package cosign_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/cosign"
	"github.com/ferryhq/ferry/internal/cosigntest"
)

// TestCosignCLI: the real cosign CLI (built from its Go module) accepts
// what ferry writes, with ferry's public key, and refuses it with another
// key; ferry refuses what cosign signs with another key.
func TestCosignCLI(t *testing.T) {
	cli := cosigntest.New(t)
	pub, reg := embedded(t, "tiny")
	ctx := context.Background()
	dir := t.TempDir()
	key, err := cosign.LoadOrCreateKey(dir)
	must(t, err)
	ferryPub := filepath.Join(dir, cosign.PublicKeyFile)
	user, password := reg.Credentials()
	cli.Login(t, reg.Host(), user, password)

	d := pushRandom(t, pub)
	commit := commitN(1)
	must(t, cosign.NewSigner(key, pub).Sign(ctx, d, provenance(pub, commit)))
	ref := pub.Ref(d)

	// cosign verify: ferry's signature, with ferry's key.
	out := cli.Run(t, "verify", "--key", ferryPub, "--insecure-ignore-tlog", "--allow-http-registry", ref)
	var sigs []struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
		} `json:"critical"`
	}
	if err := json.Unmarshal([]byte(out), &sigs); err != nil || len(sigs) != 1 || sigs[0].Critical.Image.Digest != d {
		t.Errorf("cosign verify printed %q (%v), want one signature of %s", out, err, d)
	}

	// cosign verify-attestation: ferry's SLSA provenance, naming the commit.
	out = cli.Run(t, "verify-attestation", "--key", ferryPub, "--type", "slsaprovenance", "--insecure-ignore-tlog", "--allow-http-registry", ref)
	var env struct{ Payload string }
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &env); err != nil {
		t.Fatalf("cosign verify-attestation printed %q: %v", out, err)
	}
	stmt, err := base64.StdEncoding.DecodeString(env.Payload)
	must(t, err)
	for _, want := range []string{`"predicateType":"` + cosign.SLSAPredicateType + `"`, `"sha1":"` + commit + `"`, `"command":"go test ./..."`, `"result":"passed"`} {
		if !strings.Contains(string(stmt), want) {
			t.Errorf("the attested statement %s does not hold %s", stmt, want)
		}
	}

	// Another key: cosign refuses ferry's image with it …
	cli.GenerateKeyPair(t, dir, "other")
	otherPub, otherKey := filepath.Join(dir, "other.pub"), filepath.Join(dir, "other.key")
	if out, err := cli.Try("verify", "--key", otherPub, "--insecure-ignore-tlog", "--allow-http-registry", ref); err == nil {
		t.Errorf("cosign verify with another key accepted ferry's image: %s", out)
	}
	// … and ferry refuses an image cosign signed with it.
	forged := pushRandom(t, pub)
	cli.Run(t, "sign", "--key", otherKey, "--tlog-upload=false", "--yes", "--allow-http-registry", pub.Ref(forged))
	cli.Run(t, "verify", "--key", otherPub, "--insecure-ignore-tlog", "--allow-http-registry", pub.Ref(forged)) // cosign's own signature is sound
	v, err := cosign.NewVerifier(key.PublicPEM(), pub)
	must(t, err)
	wantRefusal(t, v.Verify(ctx, forged, &ferry.Build{ID: 7, Commit: commit, Digest: forged}), "signed, but not with ferry's key")

	// An attestation made with cosign and ferry's own key (imported), but
	// naming another commit, is refused by ferry.
	cli.ImportKey(t, dir, filepath.Join(dir, cosign.PrivateKeyFile), "ferry-imported")
	other := pushRandom(t, pub)
	cli.Run(t, "sign", "--key", filepath.Join(dir, "ferry-imported.key"), "--tlog-upload=false", "--yes", "--allow-http-registry", pub.Ref(other))
	predicate := filepath.Join(dir, "predicate.json")
	must(t, os.WriteFile(predicate, fmt.Appendf(nil, `{"builder":{"id":"someone"},"buildType":"x","invocation":{"configSource":{"uri":"git+file:///x","digest":{"sha1":%q}}}}`, commitN(9)), 0o600))
	cli.Run(t, "attest", "--key", filepath.Join(dir, "ferry-imported.key"), "--type", "slsaprovenance", "--predicate", predicate, "--tlog-upload=false", "--yes", "--allow-http-registry", pub.Ref(other))
	cli.Run(t, "verify-attestation", "--key", ferryPub, "--type", "slsaprovenance", "--insecure-ignore-tlog", "--allow-http-registry", pub.Ref(other))
	wantRefusal(t, v.Verify(ctx, other, &ferry.Build{ID: 7, Commit: commit, Digest: other}), "names commit "+ferry.ShortSHA(commitN(9))+", but the ledger's build 7 is of commit "+ferry.ShortSHA(commit))
	// The same attestation, checked against a build of the commit it names, passes.
	wantRefusal(t, v.Verify(ctx, other, &ferry.Build{ID: 9, Commit: commitN(9), Digest: other}), "")
}
