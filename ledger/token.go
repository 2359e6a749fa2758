package ledger

import (
	"context"
	"time"

	"github.com/ferryhq/ferry"
)

// TokenStore keeps the API tokens. Only the SHA-256 of a token's secret is
// stored (Token.Hash, 64 lowercase hex); the secret never enters the
// ledger.
type TokenStore interface {
	// CreateToken records a new token and sets t.ID. Name (see
	// ferry.ValidTokenName), a valid Role, Hash and CreatedAt are
	// required. A second token with the same Name — also when the first is
	// revoked, so that an actor name in the audit trail means one token —
	// or the same Hash is refused with ECONFLICT.
	CreateToken(ctx context.Context, t *ferry.Token) error
	// TokenByHash returns the token whose secret hashes to hash, revoked
	// or not; ENOTFOUND when there is none.
	TokenByHash(ctx context.Context, hash string) (*ferry.Token, error)
	// Tokens lists every token, revoked ones included, newest first.
	Tokens(ctx context.Context) ([]*ferry.Token, error)
	// RevokeToken sets the RevokedAt of the token name to at: ENOTFOUND
	// when there is no such token, ECONFLICT when it is already revoked
	// (its first revocation time is kept).
	RevokeToken(ctx context.Context, name string, at time.Time) error
	// TouchToken sets the LastUsedAt of token id to at unless it is
	// already later; ENOTFOUND when there is no such token. Callers bound
	// how often they call it (a write per request would be wasteful).
	TouchToken(ctx context.Context, id int64, at time.Time) error
}

// PrepareToken checks a token about to be created.
func PrepareToken(t *ferry.Token) error {
	if !ferry.ValidTokenName(t.Name) {
		return ferry.Errorf(ferry.EINVALID, "token name %q: want 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", t.Name)
	}
	if !t.Role.Valid() {
		return ferry.Errorf(ferry.EINVALID, "token %s: unknown role %q", t.Name, t.Role)
	}
	if !ValidTokenHash(t.Hash) {
		return ferry.Errorf(ferry.EINVALID, "token %s: hash is not a hex SHA-256", t.Name)
	}
	if t.CreatedAt.IsZero() {
		return ferry.Errorf(ferry.EINVALID, "token %s needs a creation time", t.Name)
	}
	t.CreatedBy = StoreText(t.CreatedBy, MaxPerson)
	return nil
}

// ValidTokenHash reports whether s is a hex SHA-256 as stored: 64
// lowercase hex digits.
func ValidTokenHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// DuplicateToken is the error for a second token with a name already
// taken.
func DuplicateToken(name string) error {
	return ferry.Errorf(ferry.ECONFLICT, "a token named %q already exists (names are not reused, also after revocation)", name)
}

// DuplicateTokenSecret is the error for a second token with the same
// secret (which a random secret never gives).
func DuplicateTokenSecret(name string) error {
	return ferry.Errorf(ferry.ECONFLICT, "token %q: another token has the same secret", name)
}

// TokenNotFound is the error for a token name that names none.
func TokenNotFound(name string) error {
	return ferry.Errorf(ferry.ENOTFOUND, "no token named %q", name)
}

// UnknownToken is the error for a hash that matches no token. It does not
// repeat the hash.
func UnknownToken() error { return ferry.Errorf(ferry.ENOTFOUND, "unknown token") }

// TokenRevoked is the error for revoking a revoked token.
func TokenRevoked(name string, at time.Time) error {
	return ferry.Errorf(ferry.ECONFLICT, "token %q was already revoked at %s", name, at.UTC().Format(time.RFC3339))
}
