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

const leaseColumns = `app, holder, address, term, acquired_at, renewed_at, expires_at`

func scanLease(row scanner) (*ledger.Lease, error) {
	var (
		l                          ledger.Lease
		acquired, renewed, expires string
	)
	if err := row.Scan(&l.App, &l.Holder, &l.Address, &l.Term, &acquired, &renewed, &expires); err != nil {
		return nil, err
	}
	var errs [3]error
	l.AcquiredAt, errs[0] = decTime(acquired)
	l.RenewedAt, errs[1] = decTime(renewed)
	l.ExpiresAt, errs[2] = decTime(expires)
	return &l, errors.Join(errs[:]...)
}

// leaseTx runs fn in a write transaction (BEGIN IMMEDIATE).
func (s *Store) leaseTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Campaign implements ledger.LeaseStore.
func (s *Store) Campaign(ctx context.Context, app, holder, address string, ttl time.Duration, now time.Time) (*ledger.Lease, error) {
	if err := ledger.CheckLeaseFor(app, holder, ttl); err != nil {
		return nil, err
	}
	var l *ledger.Lease
	err := s.leaseTx(ctx, func(tx *sql.Tx) error {
		var err error
		l, err = scanLease(tx.QueryRowContext(ctx, `
			INSERT INTO leases (app, holder, address, term, acquired_at, renewed_at, expires_at)
			VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5)
			ON CONFLICT (app) DO UPDATE SET
			    holder      = excluded.holder,
			    address     = excluded.address,
			    term        = CASE WHEN leases.holder = excluded.holder THEN leases.term ELSE leases.term + 1 END,
			    acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END,
			    renewed_at  = excluded.renewed_at,
			    expires_at  = excluded.expires_at
			WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.renewed_at
			RETURNING `+leaseColumns,
			app, holder, ledger.StoreText(address, ledger.MaxRef), encTime(now), encTime(now.Add(ttl))))
		if errors.Is(err, sql.ErrNoRows) {
			held, herr := scanLease(tx.QueryRowContext(ctx, `SELECT `+leaseColumns+` FROM leases WHERE app = ?`, app))
			if herr != nil {
				return herr
			}
			l = held
			return ledger.AlreadyLed(held)
		}
		return err
	})
	if err != nil && ferry.ErrorCode(err) == ferry.EINTERNAL {
		return nil, fmt.Errorf("campaign for %s: %w", app, err)
	}
	return l, err
}

// Renew implements ledger.LeaseStore.
func (s *Store) Renew(ctx context.Context, app, holder string, term int64, ttl time.Duration, now time.Time) (*ledger.Lease, error) {
	if err := ledger.CheckLeaseFor(app, holder, ttl); err != nil {
		return nil, err
	}
	var l *ledger.Lease
	err := s.leaseTx(ctx, func(tx *sql.Tx) error {
		var err error
		l, err = scanLease(tx.QueryRowContext(ctx, `
			UPDATE leases SET renewed_at = ?4, expires_at = ?5
			WHERE app = ?1 AND holder = ?2 AND term = ?3
			RETURNING `+leaseColumns, app, holder, term, encTime(now), encTime(now.Add(ttl))))
		if errors.Is(err, sql.ErrNoRows) {
			held, herr := scanLease(tx.QueryRowContext(ctx, `SELECT `+leaseColumns+` FROM leases WHERE app = ?`, app))
			if herr != nil && !errors.Is(herr, sql.ErrNoRows) {
				return herr
			}
			return ledger.Lost(app, holder, term, held)
		}
		return err
	})
	if err != nil {
		if ferry.ErrorCode(err) == ferry.EINTERNAL {
			return nil, fmt.Errorf("renew the lease of %s: %w", app, err)
		}
		return nil, err
	}
	return l, nil
}

// TakeOver implements ledger.LeaseStore.
func (s *Store) TakeOver(ctx context.Context, app, holder, address string, prev *ledger.Lease, ttl time.Duration, now time.Time) (*ledger.Lease, error) {
	if err := ledger.CheckLeaseFor(app, holder, ttl); err != nil {
		return nil, err
	}
	var l *ledger.Lease
	err := s.leaseTx(ctx, func(tx *sql.Tx) error {
		var err error
		l, err = scanLease(tx.QueryRowContext(ctx, `
			UPDATE leases SET holder = ?2, address = ?3, term = term + 1, acquired_at = ?6, renewed_at = ?6, expires_at = ?7
			WHERE app = ?1 AND holder = ?4 AND term = ?5
			RETURNING `+leaseColumns, app, holder, ledger.StoreText(address, ledger.MaxRef), prev.Holder, prev.Term, encTime(now), encTime(now.Add(ttl))))
		if errors.Is(err, sql.ErrNoRows) {
			return ledger.Moved(prev)
		}
		return err
	})
	if err != nil {
		if ferry.ErrorCode(err) == ferry.EINTERNAL {
			return nil, fmt.Errorf("take over the lease of %s: %w", app, err)
		}
		return nil, err
	}
	return l, nil
}

// Resign implements ledger.LeaseStore.
func (s *Store) Resign(ctx context.Context, app, holder string, term int64, now time.Time) error {
	if err := ledger.CheckLease(app, holder); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE leases SET expires_at = ?4 WHERE app = ?1 AND holder = ?2 AND term = ?3 AND expires_at > ?4`,
		app, holder, term, encTime(now)); err != nil {
		return fmt.Errorf("resign the lease of %s: %w", app, err)
	}
	return nil
}

// Leader implements ledger.LeaseStore.
func (s *Store) Leader(ctx context.Context, app string) (*ledger.Lease, error) {
	if err := ledger.CheckKey("app", app, ledger.MaxName); err != nil {
		return nil, err
	}
	l, err := scanLease(s.r.QueryRowContext(ctx, `SELECT `+leaseColumns+` FROM leases WHERE app = ?`, app))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "%s has never had a leader", app)
	}
	if err != nil {
		return nil, fmt.Errorf("read the lease of %s: %w", app, err)
	}
	return l, nil
}

// Fence implements ledger.LeaseStore: a store of its own on the same file
// whose write connection carries TEMP triggers on every table but the
// lease's, refusing each insert, update and delete unless app's lease is
// still in term. Writes are serialised (BEGIN IMMEDIATE, across processes
// too), so the check and the write it guards are one step.
func (s *Store) Fence(ctx context.Context, app string, term int64) (ledger.Store, error) {
	if err := ledger.CheckKey("app", app, ledger.MaxName); err != nil {
		return nil, err
	}
	tables, err := queryList(ctx, s.r, "list tables", func(r scanner) (string, error) {
		var name string
		return name, r.Scan(&name)
	}, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('leases', 'schema_migrations') AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	quoted := "'" + strings.ReplaceAll(app, "'", "''") + "'"
	raise := fmt.Sprintf("'%s term %d of %s is over'", ledger.FenceMark, term, strings.ReplaceAll(app, "'", "''"))
	var setup []string
	for _, t := range tables {
		for _, op := range []string{"INSERT", "UPDATE", "DELETE"} {
			setup = append(setup, fmt.Sprintf(
				`CREATE TEMP TRIGGER fence_%s_%s BEFORE %s ON main.%s WHEN (SELECT term FROM leases WHERE app = %s) IS NOT %d BEGIN SELECT RAISE(ABORT, %s); END`,
				t, strings.ToLower(op), op, t, quoted, term, raise))
		}
	}
	f, err := open(ctx, s.path, setup)
	if err != nil {
		return nil, fmt.Errorf("open the fenced ledger of %s: %w", app, err)
	}
	return ledger.FencedStore(f, app, term), nil
}
