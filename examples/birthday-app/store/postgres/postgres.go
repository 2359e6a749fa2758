// Package postgres stores birthday-app's users in PostgreSQL through a pgx
// connection pool. The schema lives in migrations/ and is applied when the
// store opens, under an advisory lock so that replicas starting together
// apply each migration once.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/store/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the advisory lock key held while migrating
// (hex for "bday").
const migrateLock = 0x62646179

// Store is a birthday.Store in a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ birthday.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user:pass@host:port/db?…;
// pgxpool's pool_max_conns and the libpq parameters apply) and applies
// pending migrations. Without connect_timeout, connecting gives up after
// 5 s; without pool_max_conns, the pool holds up to max(8, 2×GOMAXPROCS)
// connections: writes wait on commits, so a few more connections than
// CPUs keep both busy.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err) // pgx masks the password
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = int32(max(8, 2*runtime.GOMAXPROCS(0)))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return s, nil
}

// migrate applies pending migrations in one transaction holding an
// advisory lock.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer NOT NULL PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
		for _, m := range ms {
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&done); err != nil {
				return fmt.Errorf("migrate %s: %w", m.Name, err)
			}
			if done {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migrate %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("migrate %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// PutUser inserts u or updates the date of birth of the user with its name.
func (s *Store) PutUser(ctx context.Context, u birthday.User) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO users (username, date_of_birth) VALUES ($1, $2)
		ON CONFLICT (username) DO UPDATE SET
			date_of_birth = EXCLUDED.date_of_birth,
			updated_at = now()`,
		u.Name, u.DateOfBirth.Time())
	if err != nil {
		return fmt.Errorf("put user: %w", err)
	}
	return nil
}

// User returns the user with the name, or an ENOTFOUND error.
func (s *Store) User(ctx context.Context, name string) (birthday.User, error) {
	var dob time.Time
	err := s.pool.QueryRow(ctx, `SELECT date_of_birth FROM users WHERE username = $1`, name).Scan(&dob)
	if errors.Is(err, pgx.ErrNoRows) {
		return birthday.User{}, birthday.Errorf(birthday.ENOTFOUND, "user %s not found", name)
	}
	if err != nil {
		return birthday.User{}, fmt.Errorf("get user: %w", err)
	}
	return birthday.User{Name: name, DateOfBirth: birthday.DateOf(dob)}, nil
}

// Ping checks that a connection to the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close closes every connection.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
