package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

const tokenColumns = `id, name, role, hash, created_at, created_by, last_used_at, revoked_at`

func scanToken(row scanner) (*ferry.Token, error) {
	var (
		t             ferry.Token
		created       string
		used, revoked sql.NullString
	)
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &t.Hash, &created, &t.CreatedBy, &used, &revoked); err != nil {
		return nil, err
	}
	var err error
	if t.CreatedAt, err = decTime(created); err != nil {
		return nil, err
	}
	if t.LastUsedAt, err = decNullTime(used); err != nil {
		return nil, err
	}
	if t.RevokedAt, err = decNullTime(revoked); err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateToken implements ledger.Store.
func (s *Store) CreateToken(ctx context.Context, t *ferry.Token) error {
	if err := ledger.PrepareToken(t); err != nil {
		return err
	}
	err := s.w.QueryRowContext(ctx, `
		INSERT INTO tokens (name, role, hash, created_at, created_by, last_used_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		t.Name, t.Role, t.Hash, encTime(t.CreatedAt), t.CreatedBy, nullTime(t.LastUsedAt), nullTime(t.RevokedAt),
	).Scan(&t.ID)
	if isUnique(err) {
		// SQLite names the column: "UNIQUE constraint failed: tokens.hash".
		if strings.Contains(err.Error(), "tokens.hash") {
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
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.UnknownToken()
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	return t, nil
}

// Tokens implements ledger.Store.
func (s *Store) Tokens(ctx context.Context) ([]*ferry.Token, error) {
	return queryList(ctx, s.r, "list tokens", scanToken, `SELECT `+tokenColumns+` FROM tokens ORDER BY id DESC`)
}

// RevokeToken implements ledger.Store.
func (s *Store) RevokeToken(ctx context.Context, name string, at time.Time) error {
	if err := ledger.CheckKey("token name", name, ledger.MaxName); err != nil {
		return err
	}
	if at.IsZero() {
		return ferry.Errorf(ferry.EINVALID, "revoking token %s needs a time", name)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	defer tx.Rollback()
	var revoked sql.NullString
	err = tx.QueryRowContext(ctx, `SELECT revoked_at FROM tokens WHERE name = ?`, name).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.TokenNotFound(name)
	}
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	if revoked.Valid {
		when, err := decTime(revoked.String)
		if err != nil {
			return fmt.Errorf("revoke token %s: %w", name, err)
		}
		return ledger.TokenRevoked(name, when)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE name = ?`, encTime(at), name); err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	return nil
}

// TouchToken implements ledger.Store.
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	if at.IsZero() {
		return ferry.Errorf(ferry.EINVALID, "touching token %d needs a time", id)
	}
	// Text order is time order (timeLayout): the later time is kept.
	res, err := s.w.ExecContext(ctx, `
		UPDATE tokens SET last_used_at = CASE
		    WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END
		WHERE id = ?`, encTime(at), encTime(at), id)
	if err != nil {
		return fmt.Errorf("touch token %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("touch token %d: %w", id, err)
	} else if n == 0 {
		return ferry.Errorf(ferry.ENOTFOUND, "token %d not found", id)
	}
	return nil
}
