// Package testdb creates throwaway PostgreSQL and MySQL/MariaDB databases
// for tests and benchmarks, on the servers named by FERRY_TEST_POSTGRES_URL
// and FERRY_TEST_MYSQL_URL (an account that may CREATE DATABASE).
//
// A test that needs a server calls [Postgres] or [MySQL]: when the server
// is not configured or does not answer, the test fails if its name is in
// FERRY_TEST_REQUIRE (a comma list such as "postgres,mysql") and is
// skipped otherwise.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// Required reports whether FERRY_TEST_REQUIRE names the part.
func Required(part string) bool {
	return slices.Contains(strings.Split(os.Getenv("FERRY_TEST_REQUIRE"), ","), part)
}

// Unavailable fails the test when part is required and skips it otherwise.
func Unavailable(t testing.TB, part, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required(part) {
		t.Fatalf("%s is required (FERRY_TEST_REQUIRE=%s) but unavailable: %s", part, os.Getenv("FERRY_TEST_REQUIRE"), msg)
	}
	t.Skipf("%s unavailable: %s", part, msg)
}

// Postgres creates a fresh database on the FERRY_TEST_POSTGRES_URL server,
// drops it when the test ends, and returns its URL.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("FERRY_TEST_POSTGRES_URL")
	if admin == "" {
		Unavailable(t, "postgres", "FERRY_TEST_POSTGRES_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbURL, drop, err := CreatePostgres(ctx, admin, Name("birthday_test"))
	if err != nil {
		Unavailable(t, "postgres", "%v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return dbURL
}

// MySQL creates a fresh database on the FERRY_TEST_MYSQL_URL server, drops
// it when the test ends, and returns its URL.
func MySQL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("FERRY_TEST_MYSQL_URL")
	if admin == "" {
		Unavailable(t, "mysql", "FERRY_TEST_MYSQL_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbURL, drop, err := CreateMySQL(ctx, admin, Name("birthday_test"))
	if err != nil {
		Unavailable(t, "mysql", "%v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return dbURL
}

// Name is prefix followed by a random lowercase suffix: a valid database
// name on every engine.
func Name(prefix string) string {
	return prefix + "_" + strings.ToLower(rand.Text()[:12])
}

// CreatePostgres creates the database name on the server of adminURL and
// returns its URL and a function that drops it (closing its connections).
func CreatePostgres(ctx context.Context, adminURL, name string) (dbURL string, drop func() error, err error) {
	if !validName(name) {
		return "", nil, fmt.Errorf("database name %q: want lowercase letters, digits and _", name)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("postgres admin url: %w", errors.Unwrap(err))
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to postgres %s: %w", u.Host, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return u.String(), drop, nil
}

// CreateMySQL creates the database name on the server of adminURL
// (mysql://user:pass@host:port/) and returns its URL and a function that
// drops it.
func CreateMySQL(ctx context.Context, adminURL, name string) (dbURL string, drop func() error, err error) {
	if !validName(name) {
		return "", nil, fmt.Errorf("database name %q: want lowercase letters, digits and _", name)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("mysql admin url: %w", errors.Unwrap(err))
	}
	cfg := driver.NewConfig()
	cfg.Net, cfg.Addr = "tcp", u.Host
	if u.Port() == "" {
		cfg.Addr += ":3306"
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Timeout = 5 * time.Second
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return "", nil, err
	}
	db := sql.OpenDB(conn)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create database %s on mysql %s: %w", name, cfg.Addr, err)
	}
	u.Path = "/" + name
	drop = func() error {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return u.String(), drop, nil
}

func validName(name string) bool {
	if name == "" || len(name) > 63 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
