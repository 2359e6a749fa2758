// Package sqlite is ferry's ledger on SQLite, the embedded default: one
// database file in ferry's data directory, driven by modernc.org/sqlite (pure
// Go, no cgo).
//
// The file is in WAL mode so readers never wait for the writer. All writes go
// through one connection, with transactions that take the write lock at BEGIN
// (BEGIN IMMEDIATE), so goroutines queue for it in Go instead of failing with
// SQLITE_BUSY; a second process on the same file waits up to the busy timeout.
// Reads use a small pool of read-only connections.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ferryhq/ferry/ledger"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// busyTimeout is how long a connection waits for a lock another process
// holds before giving up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is the ledger in one SQLite file. It implements ledger.Store.
type Store struct {
	path string
	w    *sql.DB // exactly one connection: every write
	r    *sql.DB // read-only connections
	// kindsSeen are the event kinds known to be in event_kinds (the table
	// only grows), so that AddEvent writes each kind once per process.
	kindsSeen sync.Map

	closeOnce sync.Once
	closeErr  error
}

var _ ledger.Store = (*Store)(nil)

// Open opens (creating it and its directory if needed) the ledger database
// at path and brings its schema up to date. Several processes may open the
// same file at once; migrations run in one of them.
func Open(ctx context.Context, path string) (*Store, error) { return open(ctx, path, nil) }

// open is Open with statements that each new write connection runs first
// (the fence's TEMP triggers).
func open(ctx context.Context, path string, setup []string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite ledger: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite ledger %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("open sqlite ledger: %w", err)
	}
	ms := fmt.Sprint(busyTimeout.Milliseconds())
	w, err := openDB(abs, setup,
		"_pragma=busy_timeout("+ms+")",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)", // durable at checkpoints; consistent always
		"_pragma=foreign_keys(1)",
		"_txlock=immediate",
	)
	if err != nil {
		return nil, fmt.Errorf("open sqlite ledger %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	r, err := openDB(abs, nil,
		"_pragma=busy_timeout("+ms+")",
		"_pragma=foreign_keys(1)",
		"_query_only=1",
	)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite ledger %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)

	s := &Store{path: abs, w: w, r: r}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite ledger %s: %w", abs, err)
	}
	return s, nil
}

// openDB returns a pool on the file at the absolute path abs, whose new
// connections run setup first. The name is a SQLite URI so that any path
// works: '%', '?' and '#' are escaped.
func openDB(abs string, setup []string, params ...string) (*sql.DB, error) {
	name := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(abs))
	c, err := msqlite.NewConnector("file:" + name + "?" + strings.Join(params, "&"))
	if err != nil {
		return nil, err
	}
	if len(setup) > 0 {
		c = setupConnector{Connector: c, setup: setup}
	}
	return sql.OpenDB(c), nil
}

// setupConnector runs its statements on every connection it opens, before
// database/sql hands the connection out.
type setupConnector struct {
	driver.Connector
	setup []string
}

func (c setupConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite connection cannot execute statements")
	}
	for _, q := range c.setup {
		if _, err := ex.ExecContext(ctx, q, nil); err != nil {
			conn.Close()
			return nil, fmt.Errorf("set up connection: %w", err)
		}
	}
	return conn, nil
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Close closes the store's connections; the WAL is checkpointed into the
// database file when the last connection to it closes.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
	})
	return s.closeErr
}

// migrate applies the pending embedded migrations in one write transaction.
// BEGIN IMMEDIATE makes a second process opening the file at the same time
// wait, then find nothing left to do.
func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	all, err := ledger.ReadMigrations(sub)
	if err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
		    version    INTEGER PRIMARY KEY,
		    name       TEXT NOT NULL,
		    applied_at TEXT NOT NULL
		)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	applied := map[int]string{}
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: %w", err)
		}
		applied[v] = name
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	pending, err := ledger.Pending(all, applied)
	if err != nil {
		return err
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO schema_migrations (version, name, applied_at)
			VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`,
			m.Version, m.Name); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Times are stored as UTC text with a fixed number of fraction digits, so
// that text order is time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func encTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return encTime(t)
}

func decTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

func decNullTime(s sql.NullString) (time.Time, error) {
	if !s.Valid {
		return time.Time{}, nil
	}
	return decTime(s.String)
}

// nullID stores the ID 0 (none) as NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func errCode(err error) int {
	if e, ok := errors.AsType[*msqlite.Error](err); ok {
		return e.Code()
	}
	return 0
}

func isUnique(err error) bool {
	c := errCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKey(err error) bool {
	return errCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// queryList runs a query and scans every row with scan; what names the
// list in errors. An empty result is an empty slice, never nil.
func queryList[T any](ctx context.Context, db *sql.DB, what string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// newest returns the query for the newest limit rows (by id) of table with
// columns that match every condition of where (with args) and, when values
// are given, have column equal to one of them. With several values it is
// one subquery per value — each a range of an index ending in (column, id),
// read newest first — merged newest first: an IN list would make SQLite
// sort every matching row.
func newest(columns, table string, where []string, args []any, column string, values []any, limit int) (string, []any) {
	page := func(where []string) string {
		q := `SELECT ` + columns + ` FROM ` + table
		if len(where) > 0 {
			q += ` WHERE ` + strings.Join(where, " AND ")
		}
		return q + ` ORDER BY id DESC LIMIT ?`
	}
	switch len(values) {
	case 0:
		return page(where), append(slices.Clone(args), limit)
	case 1:
		return page(append(slices.Clone(where), column+" = ?")), append(slices.Clone(args), values[0], limit)
	}
	parts := make([]string, len(values))
	var all []any
	for i, v := range values {
		parts[i] = `SELECT * FROM (` + page(append(slices.Clone(where), column+" = ?")) + `)`
		all = append(append(all, args...), v, limit)
	}
	return `SELECT ` + columns + ` FROM (` + strings.Join(parts, " UNION ALL ") + `) ORDER BY id DESC LIMIT ?`, append(all, limit)
}
