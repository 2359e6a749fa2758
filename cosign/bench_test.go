package cosign_test

import (
	"context"
	"testing"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/cosign"
	"github.com/ferryhq/ferry/oci"
)

// BenchmarkSign is the sign step of one build: the signature and the
// provenance attestation made and stored in the embedded registry
// (credentials required, loopback), each a new manifest and blob.
func BenchmarkSign(b *testing.B) {
	rt := &counting{}
	pub, _ := embedded(b, "tiny", oci.WithTransport(rt))
	signer := cosign.NewSigner(newKey(b), pub)
	digests := make([]string, 8)
	for i := range digests {
		digests[i] = pushRandom(b, pub)
	}
	p := provenance(pub, commitN(1))
	rt.n.Store(0)
	i := 0
	for ; b.Loop(); i++ {
		p.BuildID = int64(i)
		if err := signer.Sign(context.Background(), digests[i%len(digests)], p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(i), "requests/op")
}

// BenchmarkVerify is what every rollout adds before the runtime is asked:
// the signature and the attestation read from the embedded registry (tag,
// manifest and layer of each, both at once) and checked against ferry's
// key and the ledger's build.
func BenchmarkVerify(b *testing.B) {
	rt := &counting{}
	pub, _ := embedded(b, "tiny", oci.WithTransport(rt))
	key := newKey(b)
	d := pushRandom(b, pub)
	commit := commitN(1)
	if err := cosign.NewSigner(key, pub).Sign(context.Background(), d, provenance(pub, commit)); err != nil {
		b.Fatal(err)
	}
	v := key.NewVerifier(pub)
	build := &ferry.Build{ID: 7, Commit: commit, Digest: d}
	rt.n.Store(0)
	i := 0
	for ; b.Loop(); i++ {
		if err := v.Verify(context.Background(), d, build); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(i), "requests/op")
}
