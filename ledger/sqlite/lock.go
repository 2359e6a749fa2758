package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

func scanLock(row scanner) (*ferry.Lock, error) {
	var l ferry.Lock
	var created string
	if err := row.Scan(&l.App, &l.Env, &l.Reason, &l.Actor, &created); err != nil {
		return nil, err
	}
	var err error
	l.CreatedAt, err = decTime(created)
	return &l, err
}

// Lock implements ledger.LockStore.
func (s *Store) Lock(ctx context.Context, l *ferry.Lock) error {
	if err := ledger.PrepareLock(l); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO locks (app, env, reason, actor, created_at) VALUES (?, ?, ?, ?, ?)`,
		l.App, l.Env, l.Reason, l.Actor, encTime(l.CreatedAt))
	if isUnique(err) {
		if held, gerr := s.LockOf(ctx, l.App, l.Env); gerr == nil {
			return ledger.AlreadyLocked(held)
		}
		return ferry.Errorf(ferry.ECONFLICT, "%s is already locked", l.Env)
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", l.Env, err)
	}
	return nil
}

// Unlock implements ledger.LockStore.
func (s *Store) Unlock(ctx context.Context, app, env string) (*ferry.Lock, error) {
	if err := ledger.CheckEnv(app, env); err != nil {
		return nil, err
	}
	l, err := scanLock(s.w.QueryRowContext(ctx, `DELETE FROM locks WHERE app = ? AND env = ? RETURNING app, env, reason, actor, created_at`, app, env))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.NotLocked(env)
	}
	if err != nil {
		return nil, fmt.Errorf("unlock %s: %w", env, err)
	}
	return l, nil
}

// LockOf implements ledger.LockStore.
func (s *Store) LockOf(ctx context.Context, app, env string) (*ferry.Lock, error) {
	if err := ledger.CheckEnv(app, env); err != nil {
		return nil, err
	}
	l, err := scanLock(s.r.QueryRowContext(ctx, `SELECT app, env, reason, actor, created_at FROM locks WHERE app = ? AND env = ?`, app, env))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.NotLocked(env)
	}
	if err != nil {
		return nil, fmt.Errorf("read lock of %s: %w", env, err)
	}
	return l, nil
}

// Locks implements ledger.LockStore.
func (s *Store) Locks(ctx context.Context, app string) ([]*ferry.Lock, error) {
	if err := ledger.CheckKey("app", app, ledger.MaxName); err != nil {
		return nil, err
	}
	return queryList(ctx, s.r, "list locks", scanLock, `SELECT app, env, reason, actor, created_at FROM locks WHERE app = ? ORDER BY env`, app)
}

const quarantineColumns = `id, app, commit_sha, release, reason, actor, created_at`

func scanQuarantine(row scanner) (*ferry.Quarantine, error) {
	var q ferry.Quarantine
	var created string
	if err := row.Scan(&q.ID, &q.App, &q.Commit, &q.Release, &q.Reason, &q.Actor, &created); err != nil {
		return nil, err
	}
	var err error
	q.CreatedAt, err = decTime(created)
	return &q, err
}

// AddQuarantine implements ledger.LockStore.
func (s *Store) AddQuarantine(ctx context.Context, q *ferry.Quarantine) error {
	if err := ledger.PrepareQuarantine(q); err != nil {
		return err
	}
	err := s.w.QueryRowContext(ctx, `
		INSERT INTO quarantines (app, commit_sha, release, reason, actor, created_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		q.App, q.Commit, q.Release, q.Reason, q.Actor, encTime(q.CreatedAt)).Scan(&q.ID)
	if isUnique(err) {
		return ledger.AlreadyQuarantined(q.Commit)
	}
	if err != nil {
		return fmt.Errorf("quarantine %s: %w", ferry.ShortSHA(q.Commit), err)
	}
	return nil
}

// Quarantined implements ledger.LockStore.
func (s *Store) Quarantined(ctx context.Context, app, commit string) (*ferry.Quarantine, error) {
	if err := ledger.CheckCommit(app, commit); err != nil {
		return nil, err
	}
	q, err := scanQuarantine(s.r.QueryRowContext(ctx, `SELECT `+quarantineColumns+` FROM quarantines WHERE app = ? AND commit_sha = ?`, app, commit))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.NotQuarantined(commit)
	}
	if err != nil {
		return nil, fmt.Errorf("read quarantine of %s: %w", ferry.ShortSHA(commit), err)
	}
	return q, nil
}

// Quarantines implements ledger.LockStore.
func (s *Store) Quarantines(ctx context.Context, app string) ([]*ferry.Quarantine, error) {
	if err := ledger.CheckKey("app", app, ledger.MaxName); err != nil {
		return nil, err
	}
	return queryList(ctx, s.r, "list quarantines", scanQuarantine, `SELECT `+quarantineColumns+` FROM quarantines WHERE app = ? ORDER BY id DESC`, app)
}
