package cosign_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/cosign"
)

// TestVerify signs and tampers with images in the embedded registry and
// asks the verifier, with ferry's key and the ledger's build record.
func TestVerify(t *testing.T) {
	pub, _ := embedded(t, "tiny")
	ctx := context.Background()
	ferryKey, otherKey := newKey(t), newKey(t)
	signer, forger := cosign.NewSigner(ferryKey, pub), cosign.NewSigner(otherKey, pub)
	v, err := cosign.NewVerifier(ferryKey.PublicPEM(), pub)
	if err != nil {
		t.Fatal(err)
	}
	commit, otherCommit := commitN(1), commitN(2)

	tests := []struct {
		name string
		// prepare pushes an image, signs (or not) and returns its digest
		// and the ledger's build of it.
		prepare func(t *testing.T) (string, *ferry.Build)
		want    string // "" accepted, else part of the refusal
	}{
		{"signed by ferry", func(t *testing.T) (string, *ferry.Build) {
			d := pushRandom(t, pub)
			must(t, signer.Sign(ctx, d, provenance(pub, commit)))
			return d, &ferry.Build{ID: 7, Commit: commit, Digest: d}
		}, ""},
		{"signed by ferry, build still running (no digest yet)", func(t *testing.T) (string, *ferry.Build) {
			d := pushRandom(t, pub)
			must(t, signer.Sign(ctx, d, provenance(pub, commit)))
			return d, &ferry.Build{ID: 7, Commit: commit}
		}, ""},
		{"unsigned", func(t *testing.T) (string, *ferry.Build) {
			d := pushRandom(t, pub)
			return d, &ferry.Build{ID: 7, Commit: commit, Digest: d}
		}, "has no signature"},
		{"signed with another key", func(t *testing.T) (string, *ferry.Build) {
			d := pushRandom(t, pub)
			must(t, forger.Sign(ctx, d, provenance(pub, commit)))
			return d, &ferry.Build{ID: 7, Commit: commit, Digest: d}
		}, "signed, but not with ferry's key"},
		{"attestation of another commit", func(t *testing.T) (string, *ferry.Build) {
			d := pushRandom(t, pub)
			must(t, signer.Sign(ctx, d, provenance(pub, otherCommit)))
			return d, &ferry.Build{ID: 7, Commit: commit, Digest: d}
		}, "names commit " + ferry.ShortSHA(otherCommit) + ", but the ledger's build 7 is of commit " + ferry.ShortSHA(commit)},
		{"the ledger's build made another digest", func(t *testing.T) (string, *ferry.Build) {
			d, other := pushRandom(t, pub), pushRandom(t, pub)
			must(t, signer.Sign(ctx, d, provenance(pub, commit)))
			return d, &ferry.Build{ID: 7, Commit: commit, Digest: other}
		}, "the ledger's build 7 of " + ferry.ShortSHA(commit) + " made"},
		{"no build in the ledger", func(t *testing.T) (string, *ferry.Build) {
			d := pushRandom(t, pub)
			must(t, signer.Sign(ctx, d, provenance(pub, commit)))
			return d, nil
		}, "no build in the ledger"},
		{"ferry's signature of another digest re-tagged onto this one", func(t *testing.T) (string, *ferry.Build) {
			signed, planted := pushRandom(t, pub), pushRandom(t, pub)
			must(t, signer.Sign(ctx, signed, provenance(pub, commit)))
			must(t, signer.Sign(ctx, planted, provenance(pub, commit)))
			sig, err := pub.Resolve(ctx, cosign.SignatureTag(signed))
			must(t, err)
			must(t, pub.Tag(ctx, sig, cosign.SignatureTag(planted)))
			return planted, &ferry.Build{ID: 7, Commit: commit, Digest: planted}
		}, "is ferry's but signs " + "sha256:"},
		{"ferry's attestation of another digest re-tagged onto this one", func(t *testing.T) (string, *ferry.Build) {
			signed, planted := pushRandom(t, pub), pushRandom(t, pub)
			must(t, signer.Sign(ctx, signed, provenance(pub, commit)))
			must(t, signer.Sign(ctx, planted, provenance(pub, commit)))
			att, err := pub.Resolve(ctx, cosign.AttestationTag(signed))
			must(t, err)
			must(t, pub.Tag(ctx, att, cosign.AttestationTag(planted)))
			return planted, &ferry.Build{ID: 7, Commit: commit, Digest: planted}
		}, "is about another image"},
		{"a signature but no attestation", func(t *testing.T) (string, *ferry.Build) {
			d, other := pushRandom(t, pub), pushRandom(t, pub)
			must(t, signer.Sign(ctx, d, provenance(pub, commit)))
			must(t, signer.Sign(ctx, other, provenance(pub, commit)))
			// Point d's attestation tag at a plain image: no DSSE layer.
			must(t, pub.Tag(ctx, other, cosign.AttestationTag(d)))
			return d, &ferry.Build{ID: 7, Commit: commit, Digest: d}
		}, "has no DSSE attestation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, b := tt.prepare(t)
			wantRefusal(t, v.Verify(ctx, d, b), tt.want)
		})
	}
}

// TestLoadOrCreateKey: the first start makes a P-256 key pair (private
// 0600), later starts read the same one, and a lost public key file is
// written again from the private key.
func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := cosign.LoadOrCreateKey(dir)
	must(t, err)
	st, err := os.Stat(filepath.Join(dir, cosign.PrivateKeyFile))
	must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v, want 0600", st.Mode().Perm())
	}
	pubFile, err := os.ReadFile(filepath.Join(dir, cosign.PublicKeyFile))
	must(t, err)
	if string(pubFile) != string(k1.PublicPEM()) {
		t.Errorf("%s = %q, want the key's public PEM %q", cosign.PublicKeyFile, pubFile, k1.PublicPEM())
	}
	must(t, os.Remove(filepath.Join(dir, cosign.PublicKeyFile)))
	k2, err := cosign.LoadOrCreateKey(dir)
	must(t, err)
	if string(k2.PublicPEM()) != string(k1.PublicPEM()) {
		t.Error("a second start made a new key")
	}
	if _, err := os.Stat(filepath.Join(dir, cosign.PublicKeyFile)); err != nil {
		t.Errorf("the public key file was not written again: %v", err)
	}
	if _, err := cosign.ParseKey([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), nil); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("ParseKey(a public key) = %v, want %s", err, ferry.EINVALID)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
