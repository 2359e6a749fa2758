package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/ledgertest"
	"github.com/ferryhq/ferry/ledger/postgres"
)

func TestLedger(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledgertest.OpenFunc {
		dsn := newDatabase(t)
		return func(ctx context.Context) (ledger.Store, error) { return postgres.Open(ctx, dsn) }
	})
}

// newDatabase is a fresh database for tb (internal/pgtest).
func newDatabase(tb testing.TB) string { return pgtest.NewDatabase(tb) }

// TestSchema checks that opening twice applies each migration once.
func TestSchema(t *testing.T) {
	dsn := newDatabase(t)
	for range 2 {
		s, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open = %v", err)
		}
		s.Close()
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var versions, names string
	if err := conn.QueryRow(t.Context(), `SELECT string_agg(version::text, ',' ORDER BY version), string_agg(name, ',' ORDER BY version) FROM schema_migrations`).Scan(&versions, &names); err != nil {
		t.Fatal(err)
	}
	if wantVersions, wantNames := wantMigrations(t); versions != wantVersions || names != wantNames {
		t.Errorf("schema_migrations = %s %s, want %s %s", versions, names, wantVersions, wantNames)
	}
	var indexes string
	if err := conn.QueryRow(t.Context(), `SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes
		WHERE tablename = 'deployments' AND indexname <> 'deployments_pkey'`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if want := "deployments_by_app,deployments_by_app_state,deployments_by_build,deployments_by_commit,deployments_by_digest,deployments_by_env,deployments_by_release,deployments_by_state"; indexes != want {
		t.Errorf("indexes of deployments = %s, want %s", indexes, want)
	}
}

// TestDeploymentOutlivesBuild: deleting a build (no Store method does, but
// an operator may) keeps its deployments, without the build.
func TestDeploymentOutlivesBuild(t *testing.T) {
	dsn := newDatabase(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	defer s.Close()
	b := &ferry.Build{App: "app", Commit: strings.Repeat("a", 40), CreatedAt: time.Unix(1, 0)}
	if err := s.CreateBuild(t.Context(), b); err != nil {
		t.Fatalf("CreateBuild = %v", err)
	}
	d := &ferry.Deployment{App: "app", Env: "dev", Kind: ferry.DeployDeploy, State: ferry.DeploymentSucceeded, BuildID: b.ID,
		Commit: b.Commit, Digest: "sha256:" + strings.Repeat("b", 64), Actor: "ferry", CreatedAt: time.Unix(2, 0)}
	if err := s.CreateDeployment(t.Context(), d); err != nil {
		t.Fatalf("CreateDeployment = %v", err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), `DELETE FROM builds WHERE id = $1`, b.ID); err != nil {
		t.Fatalf("delete build: %v", err)
	}
	got, err := s.Deployment(t.Context(), d.ID)
	if err != nil {
		t.Fatalf("Deployment(%d) after deleting its build = %v", d.ID, err)
	}
	if got.BuildID != 0 || got.Commit != b.Commit {
		t.Errorf("Deployment(%d) after deleting its build has BuildID %d commit %s, want 0 %s", d.ID, got.BuildID, got.Commit, b.Commit)
	}
}

// TestUpgrade opens a ledger that an earlier ferry left at migration 001,
// with a build in it: Open applies 002 and keeps the build. (CASCADE drops
// the reference of 011's deployment_commit_times, not the table.)
func TestUpgrade(t *testing.T) {
	dsn := newDatabase(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	b := &ferry.Build{App: "app", Commit: strings.Repeat("a", 40), CreatedAt: time.Unix(1, 0)}
	if err := s.CreateBuild(t.Context(), b); err != nil {
		t.Fatalf("CreateBuild = %v", err)
	}
	s.Close()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `DROP TABLE deployments CASCADE; DELETE FROM schema_migrations WHERE version = 2`); err != nil {
		t.Fatalf("undo 002: %v", err)
	}
	conn.Close(t.Context())

	s, err = postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open(at 001) = %v", err)
	}
	defer s.Close()
	if _, err := s.Build(t.Context(), b.ID); err != nil {
		t.Errorf("Build(%d) after the upgrade = %v", b.ID, err)
	}
	d := &ferry.Deployment{App: "app", Env: "dev", Kind: ferry.DeployDeploy, State: ferry.DeploymentSucceeded, BuildID: b.ID,
		Commit: b.Commit, Digest: "sha256:" + strings.Repeat("b", 64), Actor: "ferry", CreatedAt: time.Unix(2, 0)}
	if err := s.CreateDeployment(t.Context(), d); err != nil {
		t.Fatalf("CreateDeployment after the upgrade = %v", err)
	}
	if got, err := s.Current(t.Context(), "app", "dev"); err != nil || got.ID != d.ID {
		t.Errorf("Current after the upgrade = %v, %v, want deployment %d", got, err, d.ID)
	}
}

// TestNewerSchema refuses a database that a newer ferry migrated further.
func TestNewerSchema(t *testing.T) {
	dsn := newDatabase(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	s.Close()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations VALUES (99, '099_future.sql', now())`); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	_, err = postgres.Open(t.Context(), dsn)
	if err == nil || !strings.Contains(err.Error(), "099_future.sql") {
		t.Errorf("Open(newer schema) = %v, want an error naming 099_future.sql", err)
	}
}

// TestOpenError: an unreachable server and a malformed DSN give errors that
// say where, without the password.
func TestOpenError(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct{ dsn, where string }{
		{"postgres://ferry:s3cret@127.0.0.1:1/ferry?sslmode=disable&connect_timeout=5", "127.0.0.1:1/ferry"},
		{"postgres://ferry:s3cret@127.0.0.1:notaport/ferry", "notaport"},
	} {
		_, err := postgres.Open(ctx, tc.dsn)
		if err == nil {
			t.Errorf("Open(%s) = nil error, want one", tc.dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%s) error shows the password: %v", tc.dsn, err)
		}
		if !strings.Contains(err.Error(), tc.where) {
			t.Errorf("Open(%s) = %v, want an error that names %s", tc.dsn, err, tc.where)
		}
	}
}

// BenchmarkAppendLog measures log lines stored per second, one line per
// call (a step printing slowly) and 100 per call (a burst of output), by an
// unfenced store and by a leader's store fenced by its term (what a
// server writes through).
func BenchmarkAppendLog(b *testing.B) {
	for _, fenced := range []bool{false, true} {
		for _, perCall := range []int{1, 100} {
			b.Run(fmt.Sprintf("fenced=%v/lines=%d", fenced, perCall), func(b *testing.B) {
				s, err := postgres.Open(b.Context(), newDatabase(b))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				var w ledger.Store = s
				if fenced {
					w = ledgertest.MustLead(b, s, "app")
					defer w.Close()
				}
				ledgertest.BenchAppendLog(b, w, perCall)
			})
		}
	}
}

// wantMigrations lists the versions and file names in migrations/, as
// schema_migrations should record them once every one is applied.
func wantMigrations(t *testing.T) (versions, names string) {
	t.Helper()
	ms, err := ledger.ReadMigrations(os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	var vs, ns []string
	for _, m := range ms {
		vs, ns = append(vs, fmt.Sprint(m.Version)), append(ns, m.Name)
	}
	return strings.Join(vs, ","), strings.Join(ns, ",")
}

// TestEveryTableFenced: the fence covers a table only through its trigger
// (migration 012), so a table added later without one would let a deposed
// leader write to it.
func TestEveryTableFenced(t *testing.T) {
	dsn := newDatabase(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname NOT IN ('leases', 'schema_migrations')
		  AND NOT EXISTS (SELECT 1 FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid
		                  WHERE g.tgrelid = c.oid AND p.proname = 'ferry_fence' AND NOT g.tgisinternal)`)
	if err != nil {
		t.Fatal(err)
	}
	unfenced, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(unfenced) > 0 {
		t.Errorf("tables without the ferry_fence trigger: %v", unfenced)
	}
}
