// Package postgres stores birthday-app's users in PostgreSQL through a pgx
// connection pool. The schema lives in migrations/ and is applied when the
// store opens, under an advisory lock so that replicas starting together
// apply each migration once.
//
// Lookups by name that arrive together share one query (see Store.User);
// writes go one statement each.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/store/internal/coalesce"
	"github.com/ferryhq/ferry/examples/birthday-app/store/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the advisory lock key held while migrating
// (hex for "bday").
const migrateLock = 0x62646179

// Store is a birthday.Store in a PostgreSQL database.
type Store struct {
	pool      *pgxpool.Pool
	dates     *coalesce.Group[string, time.Time] // dates of birth by name
	lookupSQL []string                           // [i]: the query of 2^i names
}

// Lookup batching (Store.User): at most lookupBatches queries of lookups
// in flight at once, of at most lookupBatchSize names each, a power of 2.
// 2 gave the most GETs per second in cmd/bench on 2 CPUs (1, 3 and 4
// fewer: 1 leaves PostgreSQL idle between queries, more make batches
// smaller); lookupBatchSize is a bound no batch reached there.
const (
	lookupBatches   = 2
	lookupBatchSize = 64
)

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
	for n := 1; n <= lookupBatchSize; n *= 2 {
		s.lookupSQL = append(s.lookupSQL, selectUsersSQL(n))
	}
	s.dates = coalesce.New(s.datesOfBirth, coalesce.Options{Batches: lookupBatches, MaxBatch: lookupBatchSize})
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
//
// Concurrent lookups are coalesced: while lookupBatches queries of lookups
// are in flight, lookups queue, and the next query asks for every name
// queued (see package coalesce). A lookup that finds a query slot free
// is sent at once, so there is no added wait when the store is not busy.
//
// Read-your-writes holds, on this replica and across replicas: a lookup
// is only ever answered by a query sent after the lookup was made, never
// by one already in flight, and each query reads what was committed when
// it started (READ COMMITTED). So a GET that follows a completed PUT, on
// any replica, reads that PUT's date or a later one. Nothing is cached.
//
// A query of several lookups belongs to all of them, so one lookup's
// context ending does not cancel it: that lookup returns ctx's error at
// once (or, for the caller sending the query, when the query ends), and
// the query runs until its members' latest deadline (5 s from its start
// for a context without one). A query of one lookup runs under that
// lookup's context, as before coalescing. A query's error is every
// member's error.
func (s *Store) User(ctx context.Context, name string) (birthday.User, error) {
	dob, found, err := s.dates.Lookup(ctx, name)
	if err != nil {
		return birthday.User{}, fmt.Errorf("get user: %w", err)
	}
	if !found {
		return birthday.User{}, birthday.Errorf(birthday.ENOTFOUND, "user %s not found", name)
	}
	return birthday.User{Name: name, DateOfBirth: birthday.DateOf(dob)}, nil
}

// datesOfBirth returns the date of birth of each of names (which may
// repeat) that is a user.
//
// The query names the users in a list of parameters, one statement per
// power of 2 (the last name repeated to fill it), rather than in one array
// parameter (username = ANY($1)): PostgreSQL plans an array parameter
// afresh at each execution, which cost more than the lookups themselves
// (BenchmarkUser), while a list of parameters gets a cached generic plan,
// like the single lookup's username = $1.
func (s *Store) datesOfBirth(ctx context.Context, names []string) (map[string]time.Time, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if len(names) > lookupBatchSize {
		return nil, fmt.Errorf("%d names in one query, want at most %d", len(names), lookupBatchSize)
	}
	distinct := slices.Clone(names)
	slices.Sort(distinct)
	distinct = slices.Compact(distinct)
	size := 1 << bits.Len(uint(len(distinct)-1)) // the next power of 2
	args := make([]any, size)
	for i := range args {
		args[i] = distinct[min(i, len(distinct)-1)]
	}
	rows, err := s.pool.Query(ctx, s.lookupSQL[bits.Len(uint(size-1))], args...)
	if err != nil {
		return nil, err
	}
	dates := make(map[string]time.Time, len(distinct))
	var (
		name string
		dob  time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&name, &dob}, func() error {
		dates[name] = dob
		return nil
	}); err != nil {
		return nil, err
	}
	return dates, nil
}

// selectUsersSQL is the query of the users among n names, $1 to $n.
func selectUsersSQL(n int) string {
	var b strings.Builder
	b.WriteString("SELECT username, date_of_birth FROM users WHERE username IN (")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+1))
	}
	b.WriteString(")")
	return b.String()
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
