// Package auth is ferry's access control. An API token is a random secret
// with a name and a role (ferry.Role); the ledger keeps only the secret's
// SHA-256, so the secret is shown once, when the token is made, and can be
// neither read back nor leaked from the ledger. Every API request but the
// health check and webhooks (which carry signatures) presents a token as
// "Authorization: Bearer <secret>"; Middleware looks it up by hash and puts
// it in the request's context, where handlers check the role an action
// needs (Require) and name the actor of their audit events (Actor).
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Prefix starts every secret, so that a leaked one is recognisable (by
// secret scanners, and by people).
const Prefix = "ferry_"

// secretBytes is the randomness in a secret: 256 bits.
const secretBytes = 32

var encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Generate makes a new secret from random (crypto/rand when nil) and
// returns it with its hash: "ferry_" and 32 random bytes in lowercase
// base32 (58 characters in all).
func Generate(random io.Reader) (secret, hash string, err error) {
	if random == nil {
		random = rand.Reader
	}
	b := make([]byte, secretBytes)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	secret = Prefix + strings.ToLower(encoding.EncodeToString(b))
	return secret, Hash(secret), nil
}

// Hash returns what the ledger keeps of a secret: its SHA-256 in lowercase
// hex. A fast hash is enough (no salt, no key stretching): secrets are 256
// random bits, not passwords, so there is nothing to guess.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
