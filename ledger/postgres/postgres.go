// Package postgres is ferry's ledger on PostgreSQL, for several ferry
// servers sharing one ledger. It uses a pgx connection pool.
//
// Compare-and-set transitions lock the build's row (SELECT … FOR UPDATE), and
// log lines are numbered from a counter in the build's row that the appending
// statement updates, so concurrent appends from any number of servers queue
// on that row and numbers stay gapless. Migrations run under a
// transaction-scoped advisory lock, so servers starting together apply them
// once.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/ledger"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLock is the advisory lock key held while migrating: the bytes of
// "ferryMIG". Advisory locks are per database, so ledgers in other databases
// of one server do not wait for each other.
const migrateLock int64 = 0x666572_72794d4947

// Store is the ledger in a PostgreSQL database. It implements ledger.Store.
type Store struct {
	pool *pgxpool.Pool
}

var _ ledger.Store = (*Store)(nil)

// Open connects to the database named by dsn (postgres://user:pass@host/db?…
// or the key=value form) and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres ledger: %w", err) // the error masks the password
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres ledger %s: %w", where, err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres ledger %s: %w", where, err)
	}
	return s, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// migrate applies the pending embedded migrations in one transaction, under
// an advisory lock so that concurrent servers migrate one after the other;
// the later ones find nothing left to do.
func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	all, err := ledger.ReadMigrations(sub)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			CREATE TABLE IF NOT EXISTS schema_migrations (
			    version    INTEGER PRIMARY KEY,
			    name       TEXT        NOT NULL,
			    applied_at TIMESTAMPTZ NOT NULL
			)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version, name FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		applied := map[int]string{}
		var (
			v    int
			name string
		)
		if _, err := pgx.ForEachRow(rows, []any{&v, &name}, func() error {
			applied[v] = name
			return nil
		}); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		pending, err := ledger.Pending(all, applied)
		if err != nil {
			return err
		}
		for _, m := range pending {
			// Without arguments pgx uses the simple protocol, which
			// runs a script of several statements.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())`,
				m.Version, m.Name); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// decNullTime reads a nullable time back in UTC.
func decNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullID stores the ID 0 (none) as NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func pgCode(err error) string {
	if e, ok := errors.AsType[*pgconn.PgError](err); ok {
		return e.Code
	}
	return ""
}

func isUnique(err error) bool     { return pgCode(err) == "23505" } // unique_violation
func isForeignKey(err error) bool { return pgCode(err) == "23503" } // foreign_key_violation

// params collects query arguments and names them $1, $2, … in order.
type params []any

// add appends v and returns its placeholder.
func (p *params) add(v any) string {
	*p = append(*p, v)
	return "$" + strconv.Itoa(len(*p))
}

// queryList runs a query and scans every row with scan (through pgx's
// CollectRows); what names the list in errors. An empty result is an
// empty slice, never nil.
func queryList[T any](ctx context.Context, pool *pgxpool.Pool, what string, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// newest returns the query for the newest limit rows (by id) of table with
// columns that match every condition of where (placeholders of args) and,
// when values are given, have column equal to one of them. With several
// values it is one subquery per value — each a range of an index ending in
// (column, id), read newest first — merged newest first: = ANY(…) would
// make PostgreSQL read and sort every matching row, or walk the id order
// past every row that does not match.
func newest(columns, table string, where []string, args *params, column string, values []string, limit int) string {
	lim := args.add(limit)
	page := func(where []string) string {
		q := `SELECT ` + columns + ` FROM ` + table
		if len(where) > 0 {
			q += ` WHERE ` + strings.Join(where, " AND ")
		}
		return q + ` ORDER BY id DESC LIMIT ` + lim
	}
	switch len(values) {
	case 0:
		return page(where)
	case 1:
		return page(append(slices.Clone(where), column+" = "+args.add(values[0])))
	}
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = `(` + page(append(slices.Clone(where), column+" = "+args.add(v))) + `)`
	}
	return strings.Join(parts, " UNION ALL ") + ` ORDER BY id DESC LIMIT ` + lim
}
