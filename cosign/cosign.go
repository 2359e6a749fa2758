// Package cosign signs ferry's images and checks them, in the formats of
// sigstore's cosign, so that `cosign verify` and `cosign verify-attestation`
// accept what ferry writes and ferry refuses what it did not write.
//
// For an image digest sha256:<hex> in a repository, ferry stores two
// artifacts in the same repository, under cosign's tags:
//
//   - sha256-<hex>.sig: an OCI image whose layer is a "simple signing"
//     payload (media type application/vnd.dev.cosign.simplesigning.v1+json)
//     naming the digest, with the ECDSA signature of that payload in the
//     layer annotation dev.cosignproject.cosign/signature;
//   - sha256-<hex>.att: an OCI image whose layer is a DSSE envelope
//     (application/vnd.dsse.envelope.v1+json) holding an in-toto statement
//     about the digest with a SLSA provenance v0.2 predicate: the commit,
//     branch, test command and result, builder and times of the build.
//
// Signing and verifying use sigstore's own Go libraries (signature,
// signature/dsse, signature/payload, cryptoutils); the registry is reached
// through a small Registry interface (oci.Publisher in ferry).
package cosign

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/ferryhq/ferry"
)

// Registry is what signing and verifying need of the image's repository.
type Registry interface {
	// Push uploads img and points tags at it.
	Push(ctx context.Context, img v1.Image, tags ...string) (digest string, err error)
	// Resolve returns the digest a tag points at; ferry.ENOTFOUND when
	// there is no such tag.
	Resolve(ctx context.Context, tag string) (digest string, err error)
	// Image returns the image with the manifest digest.
	Image(ctx context.Context, digest string) (v1.Image, error)
	// Repo is the repository (host/path), the identity signed images claim.
	Repo() string
}

// SignatureTag and AttestationTag are cosign's tags for digest's signature
// and attestation: "sha256-<hex>.sig" and "sha256-<hex>.att".
func SignatureTag(digest string) string   { return artifactTag(digest, "sig") }
func AttestationTag(digest string) string { return artifactTag(digest, "att") }

func artifactTag(digest, suffix string) string {
	return strings.Replace(digest, ":", "-", 1) + "." + suffix
}

// Signer signs digests with ferry's key and stores the signature and the
// provenance attestation next to the image.
type Signer struct {
	key *Key
	reg Registry
}

// NewSigner returns a Signer writing to reg.
func NewSigner(key *Key, reg Registry) *Signer { return &Signer{key: key, reg: reg} }

// Sign writes digest's signature and its provenance attestation (what p
// says), replacing any artifacts under cosign's tags: only ferry writes to
// the registry, and what it writes is what it vouches for. Signing again
// (a resumed build) writes new, equally valid artifacts.
func (s *Signer) Sign(ctx context.Context, digest string, p ferry.Provenance) error {
	if !validDigest(digest) {
		return ferry.Errorf(ferry.EINVALID, "sign: %q is not a sha256 digest", digest)
	}
	if p.Image == "" {
		p.Image = s.reg.Repo()
	}
	simple := payload.SimpleContainerImage{Critical: payload.Critical{
		Identity: payload.Identity{DockerReference: s.reg.Repo()},
		Image:    payload.Image{DockerManifestDigest: digest},
		Type:     payload.CosignSignatureType,
	}}
	body, err := json.Marshal(simple)
	if err != nil {
		return fmt.Errorf("sign %s: %w", digest, err)
	}
	sig, err := s.key.signer.SignMessage(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sign %s: %w", digest, err)
	}
	sigImg, err := artifact(body, simpleSigningType, map[string]string{signatureAnnotation: base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		return fmt.Errorf("sign %s: %w", digest, err)
	}

	stmt, err := json.Marshal(newStatement(digest, p))
	if err != nil {
		return fmt.Errorf("attest %s: %w", digest, err)
	}
	env, err := dsse.WrapSigner(s.key.signer, InTotoPayloadType).SignMessage(bytes.NewReader(stmt))
	if err != nil {
		return fmt.Errorf("attest %s: %w", digest, err)
	}
	attImg, err := artifact(env, dsseEnvelopeType, map[string]string{"predicateType": SLSAPredicateType, signatureAnnotation: ""})
	if err != nil {
		return fmt.Errorf("attest %s: %w", digest, err)
	}

	// Both at once: a build is recorded succeeded only after this step,
	// and one interrupted half-way signs again when it resumes.
	var attErr, sigErr error
	var wg sync.WaitGroup
	wg.Go(func() { _, attErr = s.reg.Push(ctx, attImg, AttestationTag(digest)) })
	wg.Go(func() { _, sigErr = s.reg.Push(ctx, sigImg, SignatureTag(digest)) })
	wg.Wait()
	if attErr != nil {
		return fmt.Errorf("store attestation of %s: %w", digest, attErr)
	}
	if sigErr != nil {
		return fmt.Errorf("store signature of %s: %w", digest, sigErr)
	}
	return nil
}

// artifact is cosign's storage of a signature or an attestation: an OCI
// image with an empty config and one layer carrying body and annotations.
func artifact(body []byte, mediaType types.MediaType, annotations map[string]string) (v1.Image, error) {
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	return mutate.Append(base, mutate.Addendum{Layer: static.NewLayer(body, mediaType), Annotations: annotations})
}

// Verifier checks that a digest carries ferry's signature and a provenance
// attestation that agrees with the ledger's build record.
type Verifier struct {
	v   signature.Verifier
	reg Registry
}

// NewVerifier returns a Verifier that trusts the PEM public key pub and
// reads from reg.
func NewVerifier(pub []byte, reg Registry) (*Verifier, error) {
	key, err := cryptoutils.UnmarshalPEMToPublicKey(pub)
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "not a PEM public key")
	}
	v, err := signature.LoadVerifier(key, cryptoHash)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	return &Verifier{v: v, reg: reg}, nil
}

// NewVerifier returns a Verifier trusting the key's public half.
func (k *Key) NewVerifier(reg Registry) *Verifier { return &Verifier{v: k.signer, reg: reg} }

// Verify checks digest against ferry's key and b, the ledger's record of
// the build that made it (b.Digest is empty while the build runs): the
// signature must be ferry's and name digest, and a SLSA provenance
// attestation signed by ferry must name digest and b's commit. A refusal
// is a ferry.EFORBIDDEN error saying why; a registry that cannot be read
// is another error.
func (v *Verifier) Verify(ctx context.Context, digest string, b *ferry.Build) error {
	switch {
	case !validDigest(digest):
		return ferry.Errorf(ferry.EFORBIDDEN, "%q is not a sha256 digest", digest)
	case b == nil:
		return ferry.Errorf(ferry.EFORBIDDEN, "no build in the ledger made %s", ferry.ShortDigest(digest))
	case b.Digest != "" && b.Digest != digest:
		return ferry.Errorf(ferry.EFORBIDDEN, "the ledger's build %d of %s made %s, not %s", b.ID, b.ShortCommit(), ferry.ShortDigest(b.Digest), ferry.ShortDigest(digest))
	}
	var sigErr, attErr error
	var wg sync.WaitGroup
	wg.Go(func() { sigErr = v.signature(ctx, digest) })
	wg.Go(func() { attErr = v.attestation(ctx, digest, b) })
	wg.Wait()
	if sigErr != nil {
		return sigErr
	}
	return attErr
}

// signature checks the simple-signing signatures under digest's .sig tag:
// one must verify with ferry's key and name digest.
func (v *Verifier) signature(ctx context.Context, digest string) error {
	layers, err := v.load(ctx, digest, SignatureTag(digest), "signature")
	if err != nil {
		return err
	}
	reason := fmt.Sprintf("%s has no cosign signature layer under %s", ferry.ShortDigest(digest), SignatureTag(digest))
	for _, l := range layers {
		if l.mediaType != simpleSigningType {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(l.annotations[signatureAnnotation])
		if err == nil {
			err = v.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(l.body))
		}
		if err != nil {
			reason = fmt.Sprintf("%s is signed, but not with ferry's key", ferry.ShortDigest(digest))
			continue
		}
		var simple payload.SimpleContainerImage
		if err := json.Unmarshal(l.body, &simple); err != nil || simple.Critical.Type != payload.CosignSignatureType {
			return ferry.Errorf(ferry.EFORBIDDEN, "%s: ferry's signature holds no cosign payload", ferry.ShortDigest(digest))
		}
		if got := simple.Critical.Image.DockerManifestDigest; got != digest {
			reason = fmt.Sprintf("the signature under %s is ferry's but signs %s, not %s", SignatureTag(digest), ferry.ShortDigest(got), ferry.ShortDigest(digest))
			continue
		}
		return nil
	}
	return ferry.Errorf(ferry.EFORBIDDEN, "%s", reason)
}

// attestation checks the DSSE envelopes under digest's .att tag: one must
// verify with ferry's key and hold a SLSA provenance statement about
// digest, built from b's commit.
func (v *Verifier) attestation(ctx context.Context, digest string, b *ferry.Build) error {
	layers, err := v.load(ctx, digest, AttestationTag(digest), "provenance attestation")
	if err != nil {
		return err
	}
	reason := fmt.Sprintf("%s has no DSSE attestation under %s", ferry.ShortDigest(digest), AttestationTag(digest))
	keyed := false // a reason from an envelope ferry signed beats one from another key
	for _, l := range layers {
		if l.mediaType != dsseEnvelopeType {
			continue
		}
		var body []byte
		dv := dsse.WrapVerifier(v.v, dsse.WithExpectedPayloadType(InTotoPayloadType), dsse.WithDecodedPayload(&body))
		if err := dv.VerifySignature(bytes.NewReader(l.body), nil); err != nil {
			if !keyed {
				reason = fmt.Sprintf("the attestation of %s is not signed with ferry's key", ferry.ShortDigest(digest))
			}
			continue
		}
		keyed = true
		var st statement
		switch err := json.Unmarshal(body, &st); {
		case err != nil:
			reason = fmt.Sprintf("the attestation of %s is not an in-toto statement: %v", ferry.ShortDigest(digest), err)
		case st.PredicateType != SLSAPredicateType:
			reason = fmt.Sprintf("the attestation of %s is a %s, not SLSA provenance", ferry.ShortDigest(digest), st.PredicateType)
		case !st.names(digest):
			reason = fmt.Sprintf("the attestation under %s is about another image", AttestationTag(digest))
		case st.commit() != b.Commit:
			reason = fmt.Sprintf("the attestation of %s names commit %s, but the ledger's build %d is of commit %s", ferry.ShortDigest(digest), ferry.ShortSHA(st.commit()), b.ID, b.ShortCommit())
		default:
			return nil
		}
	}
	return ferry.Errorf(ferry.EFORBIDDEN, "%s", reason)
}

// layer is one layer of a signature or attestation artifact.
type layer struct {
	mediaType   types.MediaType
	annotations map[string]string
	body        []byte
}

// maxLayers and maxBody bound what a verification reads.
const (
	maxLayers = 64
	maxBody   = 1 << 20
)

// load reads the artifact under tag: its layers with their annotations.
// A missing tag is a refusal ("not signed"); a registry error is not.
func (v *Verifier) load(ctx context.Context, digest, tag, what string) ([]layer, error) {
	d, err := v.reg.Resolve(ctx, tag)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil, ferry.Errorf(ferry.EFORBIDDEN, "%s has no %s: nothing under %s in the registry (ferry did not build it, or built it before it signed images)", ferry.ShortDigest(digest), what, tag)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", what, ferry.ShortDigest(digest), err)
	}
	img, err := v.reg.Image(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", what, ferry.ShortDigest(digest), err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", what, ferry.ShortDigest(digest), err)
	}
	if len(m.Layers) > maxLayers {
		return nil, ferry.Errorf(ferry.EFORBIDDEN, "the %s of %s has %d layers; ferry reads at most %d", what, ferry.ShortDigest(digest), len(m.Layers), maxLayers)
	}
	out := make([]layer, 0, len(m.Layers))
	for _, desc := range m.Layers {
		if desc.Size > maxBody {
			continue
		}
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", what, ferry.ShortDigest(digest), err)
		}
		body, err := readAll(l)
		if err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", what, ferry.ShortDigest(digest), err)
		}
		out = append(out, layer{mediaType: desc.MediaType, annotations: desc.Annotations, body: body})
	}
	return out, nil
}

func readAll(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, errors.New("layer over 1 MiB")
	}
	return b, nil
}

func validDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
