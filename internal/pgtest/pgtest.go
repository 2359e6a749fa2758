// Package pgtest makes fresh PostgreSQL databases for tests, on the server
// FERRY_TEST_POSTGRES_URL names, under the suite's rule for missing parts
// (internal/testenv): the ledger engine's own suite and the server's
// tests that run on a PostgreSQL ledger both use it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/internal/testenv"
)

// NewDatabase creates a fresh database on the server at
// FERRY_TEST_POSTGRES_URL, drops it when tb ends, and returns its URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	admin := os.Getenv("FERRY_TEST_POSTGRES_URL")
	if admin == "" {
		testenv.Unavailable(tb, "postgres", "FERRY_TEST_POSTGRES_URL is not set")
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatalf("FERRY_TEST_POSTGRES_URL is not a postgres:// URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		testenv.Unavailable(tb, "postgres", "connect to postgres: %v", err)
	}
	defer conn.Close(ctx)

	var b [6]byte
	rand.Read(b[:])
	name := "ferry_t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if err := dropDatabase(ctx, conn, name); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// dropDatabase drops the database name, ending its sessions. A role without
// pg_signal_backend may not end an autovacuum worker (PostgreSQL 15 refuses
// DROP … WITH (FORCE) then, with 42501); a plain DROP stops such a worker by
// itself, so that is the fallback.
func dropDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	if e, ok := errors.AsType[*pgconn.PgError](err); !ok || e.Code != "42501" {
		return err
	}
	for range 5 {
		if _, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}
