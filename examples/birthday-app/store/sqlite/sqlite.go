// Package sqlite stores birthday-app's users in a SQLite file, through the
// pure-Go modernc.org/sqlite driver (no cgo). The schema lives in
// migrations/ and is applied when the store opens.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/store/migrate"

	"modernc.org/sqlite" // also registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a birthday.Store in one SQLite file.
type Store struct {
	db *sql.DB
}

var _ birthday.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path and applies
// pending migrations. The file uses write-ahead logging; writers wait up
// to 10 s for one another.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite %s: the path must not contain '?' or '#'", path)
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.migrateWhenFree(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}

// openWait bounds how long Open waits for other openers of a fresh file.
const openWait = 10 * time.Second

// migrateWhenFree migrates, trying again while the file is busy. Replicas
// starting together on a fresh file race to switch it to write-ahead
// logging, and SQLite answers that switch with SQLITE_BUSY at once, without
// waiting the busy timeout; a moment later the file is in WAL mode and
// the next try waits for the lock like any writer.
func (s *Store) migrateWhenFree(ctx context.Context) error {
	deadline := time.Now().Add(openWait)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := s.migrate(ctx)
		if !busy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// busy reports whether err is SQLite's SQLITE_BUSY (or an extended code
// of it).
func busy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == 5
}

// migrate applies pending migrations in one immediate transaction, which
// holds SQLite's write lock: concurrent openers apply each one once.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if n > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// PutUser inserts u or updates the date of birth of the user with its name.
func (s *Store) PutUser(ctx context.Context, u birthday.User) error {
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO users (username, date_of_birth) VALUES (?, ?)
		ON CONFLICT (username) DO UPDATE SET
			date_of_birth = excluded.date_of_birth,
			updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`,
		u.Name, u.DateOfBirth.String())
	if err != nil {
		return fmt.Errorf("put user: %w", err)
	}
	return nil
}

// User returns the user with the name, or an ENOTFOUND error.
func (s *Store) User(ctx context.Context, name string) (birthday.User, error) {
	var dob string
	err := s.db.QueryRowContext(ctx, `SELECT date_of_birth FROM users WHERE username = ?`, name).Scan(&dob)
	if errors.Is(err, sql.ErrNoRows) {
		return birthday.User{}, birthday.Errorf(birthday.ENOTFOUND, "user %s not found", name)
	}
	if err != nil {
		return birthday.User{}, fmt.Errorf("get user: %w", err)
	}
	d, err := birthday.ParseDate(dob)
	if err != nil {
		return birthday.User{}, fmt.Errorf("get user: stored date of birth %q is not a date", dob)
	}
	return birthday.User{Name: name, DateOfBirth: d}, nil
}

// Ping checks that the database file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
