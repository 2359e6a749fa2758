package server

import (
	"fmt"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/cosign"
)

// SigningKey returns the key ferry signs images with: the one
// signing.key names (decrypted with signing.password), or the key pair
// kept in the data directory, created at the first start. Either way the
// public key is written to <dataDir>/cosign.pub, for `cosign verify --key`.
func SigningKey(cfg *config.Config, getenv func(string) string, readFile func(string) ([]byte, error)) (*cosign.Key, error) {
	if cfg.Signing.Key == "" {
		k, err := cosign.LoadOrCreateKey(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		return k, nil
	}
	b, err := readFile(cfg.Signing.Key)
	if err != nil {
		return nil, fmt.Errorf("signing.key: %w", err)
	}
	var password []byte
	if !cfg.Signing.Password.IsZero() {
		p, err := cfg.Signing.Password.Resolve(getenv, readFile)
		if err != nil {
			return nil, err
		}
		password = []byte(p)
	}
	k, err := cosign.ParseKey(b, password)
	if err != nil {
		return nil, fmt.Errorf("signing.key %s: %w", cfg.Signing.Key, err)
	}
	if err := k.WritePublic(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return k, nil
}

// builderID names this ferry in provenance attestations (SLSA builder.id).
func builderID(version string) string {
	if version == "" {
		version = "dev"
	}
	return "https://github.com/ferryhq/ferry@" + version
}
