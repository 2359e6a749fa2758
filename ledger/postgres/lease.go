package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

const leaseColumns = `app, holder, address, term, acquired_at, renewed_at, expires_at`

// leaseLockTimeout bounds a lease update's wait for the writes under way
// (they hold the lease row FOR SHARE): a renewal that waits longer tries
// again later, well within the TTL, instead of joining a lock queue.
const leaseLockTimeout = "500ms"

func scanLease(row pgx.Row) (*ledger.Lease, error) {
	var l ledger.Lease
	if err := row.Scan(&l.App, &l.Holder, &l.Address, &l.Term, &l.AcquiredAt, &l.RenewedAt, &l.ExpiresAt); err != nil {
		return nil, err
	}
	l.AcquiredAt, l.RenewedAt, l.ExpiresAt = l.AcquiredAt.UTC(), l.RenewedAt.UTC(), l.ExpiresAt.UTC()
	return &l, nil
}

// leaseTx runs fn in a transaction whose lock waits are bounded.
func (s *Store) leaseTx(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+leaseLockTimeout+`'`); err != nil {
			return err
		}
		return fn(tx)
	})
	if pgCode(err) == "55P03" { // lock_not_available
		return ferry.Wrap(err, ferry.EUNAVAILABLE, "%s: the lease is busy with writes under way; try again", what)
	}
	return err
}

// Campaign implements ledger.LeaseStore.
func (s *Store) Campaign(ctx context.Context, app, holder, address string, ttl time.Duration, now time.Time) (*ledger.Lease, error) {
	if err := ledger.CheckLeaseFor(app, holder, ttl); err != nil {
		return nil, err
	}
	var l *ledger.Lease
	err := s.leaseTx(ctx, "campaign", func(tx pgx.Tx) error {
		var err error
		l, err = scanLease(tx.QueryRow(ctx, `
			INSERT INTO leases (app, holder, address, term, acquired_at, renewed_at, expires_at)
			VALUES ($1, $2, $3, 1, $4, $4, $5)
			ON CONFLICT (app) DO UPDATE SET
			    holder      = EXCLUDED.holder,
			    address     = EXCLUDED.address,
			    term        = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.term ELSE leases.term + 1 END,
			    acquired_at = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.acquired_at ELSE EXCLUDED.acquired_at END,
			    renewed_at  = EXCLUDED.renewed_at,
			    expires_at  = EXCLUDED.expires_at
			WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= EXCLUDED.renewed_at
			RETURNING `+leaseColumns,
			app, holder, ledger.StoreText(address, ledger.MaxRef), now.UTC(), now.Add(ttl).UTC()))
		if errors.Is(err, pgx.ErrNoRows) {
			held, herr := scanLease(tx.QueryRow(ctx, `SELECT `+leaseColumns+` FROM leases WHERE app = $1`, app))
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
	err := s.leaseTx(ctx, "renew", func(tx pgx.Tx) error {
		var err error
		l, err = scanLease(tx.QueryRow(ctx, `
			UPDATE leases SET renewed_at = $4, expires_at = $5
			WHERE app = $1 AND holder = $2 AND term = $3
			RETURNING `+leaseColumns, app, holder, term, now.UTC(), now.Add(ttl).UTC()))
		if errors.Is(err, pgx.ErrNoRows) {
			held, herr := scanLease(tx.QueryRow(ctx, `SELECT `+leaseColumns+` FROM leases WHERE app = $1`, app))
			if herr != nil && !errors.Is(herr, pgx.ErrNoRows) {
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
	err := s.leaseTx(ctx, "take over", func(tx pgx.Tx) error {
		var err error
		l, err = scanLease(tx.QueryRow(ctx, `
			UPDATE leases SET holder = $2, address = $3, term = term + 1, acquired_at = $6, renewed_at = $6, expires_at = $7
			WHERE app = $1 AND holder = $4 AND term = $5
			RETURNING `+leaseColumns, app, holder, ledger.StoreText(address, ledger.MaxRef), prev.Holder, prev.Term, now.UTC(), now.Add(ttl).UTC()))
		if errors.Is(err, pgx.ErrNoRows) {
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
	err := s.leaseTx(ctx, "resign", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE leases SET expires_at = $4 WHERE app = $1 AND holder = $2 AND term = $3 AND expires_at > $4`,
			app, holder, term, now.UTC())
		return err
	})
	if err != nil && ferry.ErrorCode(err) == ferry.EINTERNAL {
		return fmt.Errorf("resign the lease of %s: %w", app, err)
	}
	return err
}

// Leader implements ledger.LeaseStore.
func (s *Store) Leader(ctx context.Context, app string) (*ledger.Lease, error) {
	if err := ledger.CheckKey("app", app, ledger.MaxName); err != nil {
		return nil, err
	}
	l, err := scanLease(s.pool.QueryRow(ctx, `SELECT `+leaseColumns+` FROM leases WHERE app = $1`, app))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "%s has never had a leader", app)
	}
	if err != nil {
		return nil, fmt.Errorf("read the lease of %s: %w", app, err)
	}
	return l, nil
}

// fencedSessionTimeout bounds how long a leader's statement may run and
// its transaction stay idle. Each write holds the lease row FOR SHARE to
// the end of its transaction, and a takeover must update that row: a
// leader paused or cut off in the middle of a transaction would otherwise
// keep every standby out for as long as its connection lives.
const fencedSessionTimeout = "5s"

// Fence implements ledger.LeaseStore: a pool of its own whose connections
// carry the term in the session setting ferry.fence, which the fence
// trigger of every table checks (migration 012), and whose statements and
// idle transactions end after fencedSessionTimeout.
func (s *Store) Fence(ctx context.Context, app string, term int64) (ledger.Store, error) {
	if err := ledger.CheckKey("app", app, ledger.MaxName); err != nil {
		return nil, err
	}
	cfg := s.pool.Config()
	fence := fmt.Sprintf("%d %s", term, app)
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `SELECT set_config('ferry.fence', $1, false),
			set_config('statement_timeout', $2, false), set_config('idle_in_transaction_session_timeout', $2, false)`,
			fence, fencedSessionTimeout)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open the fenced ledger of %s: %w", app, err)
	}
	return ledger.FencedStore(&Store{pool: pool}, app, term), nil
}
