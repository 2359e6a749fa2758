package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

const tokenColumns = `id, name, role, hash, created_at, created_by, last_used_at, revoked_at`

func scanToken(row pgx.Row) (*ferry.Token, error) {
	var (
		t             ferry.Token
		used, revoked *time.Time
	)
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &t.Hash, &t.CreatedAt, &t.CreatedBy, &used, &revoked); err != nil {
		return nil, err
	}
	t.CreatedAt = t.CreatedAt.UTC()
	t.LastUsedAt, t.RevokedAt = decNullTime(used), decNullTime(revoked)
	return &t, nil
}

// CreateToken implements ledger.Store.
func (s *Store) CreateToken(ctx context.Context, t *ferry.Token) error {
	if err := ledger.PrepareToken(t); err != nil {
		return err
	}
	err := s.pool.QueryRow(ctx, `
		INSERT INTO tokens (name, role, hash, created_at, created_by, last_used_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		RETURNING id`,
		t.Name, string(t.Role), t.Hash, t.CreatedAt.UTC(), t.CreatedBy, nullTime(t.LastUsedAt), nullTime(t.RevokedAt),
	).Scan(&t.ID)
	if isUnique(err) {
		if e, ok := errors.AsType[*pgconn.PgError](err); ok && e.ConstraintName == "tokens_hash_key" {
			return ledger.DuplicateTokenSecret(t.Name)
		}
		return ledger.DuplicateToken(t.Name)
	}
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.Name, err)
	}
	return nil
}

// TokenByHash implements ledger.Store.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*ferry.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ledger.UnknownToken()
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	return t, nil
}

// Tokens implements ledger.Store.
func (s *Store) Tokens(ctx context.Context) ([]*ferry.Token, error) {
	return queryList(ctx, s.pool, "list tokens", scanToken, `SELECT `+tokenColumns+` FROM tokens ORDER BY id DESC`)
}

// RevokeToken implements ledger.Store. Revocation is final, so when the
// update finds no unrevoked token, reading the row afterwards tells a
// missing token from a revoked one without a race.
func (s *Store) RevokeToken(ctx context.Context, name string, at time.Time) error {
	if err := ledger.CheckKey("token name", name, ledger.MaxName); err != nil {
		return err
	}
	if at.IsZero() {
		return ferry.Errorf(ferry.EINVALID, "revoking token %s needs a time", name)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL`, at.UTC(), name)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var revoked *time.Time
	err = s.pool.QueryRow(ctx, `SELECT revoked_at FROM tokens WHERE name = $1`, name).Scan(&revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.TokenNotFound(name)
	}
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	if revoked == nil {
		return fmt.Errorf("revoke token %s: not revoked, yet the update found nothing", name)
	}
	return ledger.TokenRevoked(name, *revoked)
}

// TouchToken implements ledger.Store.
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	if at.IsZero() {
		return ferry.Errorf(ferry.EINVALID, "touching token %d needs a time", id)
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE tokens SET last_used_at = GREATEST(last_used_at, $1)
		WHERE id = $2`, at.UTC(), id)
	if err != nil {
		return fmt.Errorf("touch token %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ferry.Errorf(ferry.ENOTFOUND, "token %d not found", id)
	}
	return nil
}
