package cosign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/ferryhq/ferry"
)

// File names of the key pair ferry makes in its data directory.
const (
	PrivateKeyFile = "signing.key" // PKCS#8 PEM, mode 0600
	PublicKeyFile  = "cosign.pub"  // PKIX PEM, what `cosign verify --key` reads
)

// Key is ferry's signing key: an ECDSA P-256 private key (or the key a
// configuration names) and its public half.
type Key struct {
	signer signature.SignerVerifier
	pub    crypto.PublicKey
	pem    []byte
}

// PublicPEM is the public key as PEM ("-----BEGIN PUBLIC KEY-----"), the
// file `cosign verify --key` takes.
func (k *Key) PublicPEM() []byte { return bytes.Clone(k.pem) }

// LoadOrCreateKey returns the key pair kept in dir, creating it at the
// first start: a new ECDSA P-256 key written to PrivateKeyFile (0600) and
// its public half to PublicKeyFile. The private key is the truth: a
// missing or different public key file is written again from it.
func LoadOrCreateKey(dir string) (*Key, error) {
	privPath := filepath.Join(dir, PrivateKeyFile)
	b, err := os.ReadFile(privPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		priv, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("generate signing key: %w", gerr)
		}
		if b, err = cryptoutils.MarshalPrivateKeyToPEM(priv); err != nil {
			return nil, fmt.Errorf("encode signing key: %w", err)
		}
		if err := writeFile(privPath, b, 0o600); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	k, err := ParseKey(b, nil)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", privPath, err)
	}
	if err := k.WritePublic(dir); err != nil {
		return nil, err
	}
	return k, nil
}

// WritePublic writes the public key to PublicKeyFile in dir, unless the
// file already holds it.
func (k *Key) WritePublic(dir string) error {
	path := filepath.Join(dir, PublicKeyFile)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, k.pem) {
		return nil
	}
	return writeFile(path, k.pem, 0o644)
}

// ParseKey reads a PEM private key: PKCS#8, SEC 1 ("EC PRIVATE KEY") or
// cosign's own encrypted format (`cosign generate-key-pair`), decrypted
// with password (nil for none). Only ECDSA keys are taken (P-256, P-384 or P-521).
func ParseKey(pemBytes, password []byte) (*Key, error) {
	// A cosign key made with an empty password needs the empty password.
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, cryptoutils.StaticPasswordFunc(append([]byte{}, password...)))
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "not a PEM private key ferry can read (PKCS#8, EC or cosign's encrypted key with its password)")
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok {
		return nil, ferry.Errorf(ferry.EINVALID, "the signing key is a %T; ferry signs with ECDSA keys", priv)
	}
	sv, err := signature.LoadECDSASignerVerifier(ec, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(ec.Public())
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return &Key{signer: sv, pub: ec.Public(), pem: pem}, nil
}

// writeFile writes b to path atomically (temp file, sync, rename), so a
// crash leaves the old file or the new one, never half of one.
func writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
