// Package mysql stores birthday-app's users in MySQL or MariaDB through
// github.com/go-sql-driver/mysql. The schema lives in migrations/ and is
// applied when the store opens, under a named lock (GET_LOCK) so that
// replicas starting together apply each migration once.
//
// Lookups by name that arrive together share one query (see Store.User);
// writes go one statement each.
package mysql

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/store/internal/coalesce"
	"github.com/ferryhq/ferry/examples/birthday-app/store/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

const migrateLock = "birthday_app_migrate"

// Store is a birthday.Store in a MySQL or MariaDB database.
type Store struct {
	db    *sql.DB
	dates *coalesce.Group[string, birthday.Date] // dates of birth by name
}

// Lookup batching (Store.User), as the PostgreSQL store's: at most
// lookupBatches queries of lookups in flight, of at most lookupBatchSize
// names each.
const (
	lookupBatches   = 2
	lookupBatchSize = 64
)

var _ birthday.Store = (*Store)(nil)

// Config turns a URL mysql://user:pass@host:port/db?param=value into the
// driver's configuration. The port defaults to 3306; the parameters are
// the driver's DSN parameters (timeout, tls, …). Connecting gives up after
// 5 s unless timeout says otherwise.
func Config(rawURL string) (*driver.Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse mysql url: %w", errors.Unwrap(err)) // the error would repeat the password
	}
	if u.Scheme != "mysql" {
		return nil, fmt.Errorf("mysql url: scheme is %q, want mysql", u.Scheme)
	}
	cfg, err := driver.ParseDSN("/?" + u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("mysql url parameters: %w", err)
	}
	if u.Host == "" {
		return nil, errors.New("mysql url: no host")
	}
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if cfg.DBName == "" || strings.Contains(cfg.DBName, "/") {
		return nil, fmt.Errorf("mysql url: want one database name in the path, got %q", u.Path)
	}
	if !u.Query().Has("timeout") {
		cfg.Timeout = 5 * time.Second
	}
	if !u.Query().Has("interpolateParams") {
		// One round trip per query instead of prepare, execute, close.
		// Safe: the connection's character set is utf8mb4.
		cfg.InterpolateParams = true
	}
	return cfg, nil
}

// Open connects to the database at url (see Config) and applies pending
// migrations.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := Config(url)
	if err != nil {
		return nil, fmt.Errorf("open mysql: %w", err)
	}
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open mysql: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	// Below the server's wait_timeout, so the pool does not hand out
	// connections the server has already closed.
	db.SetConnMaxLifetime(5 * time.Minute)
	db.SetConnMaxIdleTime(time.Minute)
	s := &Store{db: db}
	s.dates = coalesce.New(s.datesOfBirth, coalesce.Options{Batches: lookupBatches, MaxBatch: lookupBatchSize})
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open mysql %s/%s: %w", cfg.Addr, cfg.DBName, err)
	}
	return s, nil
}

// migrate applies pending migrations while holding a named lock on one
// connection. MySQL commits DDL implicitly, so each migration is recorded
// right after it ran.
func (s *Store) migrate(ctx context.Context) (err error) {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, 60)`, migrateLock).Scan(&got); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if got.Int64 != 1 {
		return errors.New("migrate: another process held the migration lock for 60 s")
	}
	defer func() {
		// A fresh context: release the lock even if ctx is done.
		if _, rerr := conn.ExecContext(context.Background(), `DO RELEASE_LOCK(?)`, migrateLock); rerr != nil && err == nil {
			err = fmt.Errorf("migrate: unlock: %w", rerr)
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INT NOT NULL PRIMARY KEY,
		name       VARCHAR(255) NOT NULL,
		applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
	) ENGINE = InnoDB`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if n > 0 {
			continue
		}
		for _, stmt := range migrate.Statements(m.SQL) {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate %s: %w", m.Name, err)
			}
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
	}
	return nil
}

// PutUser inserts u or updates the date of birth of the user with its name.
func (s *Store) PutUser(ctx context.Context, u birthday.User) error {
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO users (username, date_of_birth) VALUES (?, ?)
		ON DUPLICATE KEY UPDATE date_of_birth = VALUES(date_of_birth)`,
		u.Name, u.DateOfBirth.String())
	if err != nil {
		return fmt.Errorf("put user: %w", err)
	}
	return nil
}

// User returns the user with the name, or an ENOTFOUND error.
//
// Concurrent lookups are coalesced as in the PostgreSQL store (see
// package coalesce), and read-your-writes holds for the same reason: a
// lookup is answered only by a query sent after it was made, and InnoDB
// gives each autocommitted SELECT a snapshot taken when it starts, so
// the query sees every write committed before the lookup, on any
// replica. Nothing is cached.
func (s *Store) User(ctx context.Context, name string) (birthday.User, error) {
	d, found, err := s.dates.Lookup(ctx, name)
	if err != nil {
		return birthday.User{}, fmt.Errorf("get user: %w", err)
	}
	if !found {
		return birthday.User{}, birthday.Errorf(birthday.ENOTFOUND, "user %s not found", name)
	}
	return birthday.User{Name: name, DateOfBirth: d}, nil
}

// datesOfBirth returns the date of birth of each of names (which may
// repeat) that is a user, in one query. The driver interpolates the
// parameters (Config), so a list of any length costs one round trip and
// no statement to prepare.
func (s *Store) datesOfBirth(ctx context.Context, names []string) (map[string]birthday.Date, error) {
	if len(names) == 0 {
		return nil, nil
	}
	distinct := slices.Clone(names)
	slices.Sort(distinct)
	distinct = slices.Compact(distinct)
	args := make([]any, len(distinct))
	for i, n := range distinct {
		args[i] = n
	}
	q := "SELECT username, date_of_birth FROM users WHERE username IN (?" + strings.Repeat(", ?", len(distinct)-1) + ")"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	dates := make(map[string]birthday.Date, len(distinct))
	for rows.Next() {
		var name, dob string
		if err := rows.Scan(&name, &dob); err != nil {
			return nil, err
		}
		d, err := birthday.ParseDate(dob)
		if err != nil {
			return nil, fmt.Errorf("stored date of birth %q of %s is not a date", dob, name)
		}
		dates[name] = d
	}
	return dates, rows.Err()
}

// Ping checks that a connection to the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping mysql: %w", err)
	}
	return nil
}

// Close closes every connection.
func (s *Store) Close() error { return s.db.Close() }

// LogTo sends the driver's own messages (such as "closing bad idle
// connection") to l instead of stderr. The driver has one logger per
// process, so this is for main to call.
func LogTo(l *slog.Logger) {
	driver.SetLogger(driverLogger{l})
}

type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) { d.l.Warn("mysql driver: " + fmt.Sprint(v...)) }
