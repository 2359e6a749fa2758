package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/ledgertest"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

func TestLedger(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledgertest.OpenFunc {
		path := filepath.Join(t.TempDir(), "ledger.db")
		return func(ctx context.Context) (ledger.Store, error) { return sqlite.Open(ctx, path) }
	})
}

// TestOpenOddPath opens a database whose path holds characters that mean
// something in a SQLite URI, in a directory that does not exist yet.
func TestOpenOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new dir", "a?b#c%20d.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	defer s.Close()
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	if err := s.AddEvent(t.Context(), &ferry.Event{Kind: "x", Time: time.Now()}); err != nil {
		t.Fatalf("AddEvent = %v", err)
	}
	s.Close()
	// The file is where the path says, not cut at '?' or '#', nor unescaped.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, filepath.Base(path)) || len(names) > 3 {
		t.Errorf("directory holds %q, want %q (and its -wal, -shm)", names, filepath.Base(path))
	}
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen(%q) = %v", path, err)
	}
	defer s.Close()
	if got, err := s.Events(t.Context(), ledger.EventFilter{}); err != nil || len(got) != 1 {
		t.Errorf("Events after reopen = %v, %v, want one", got, err)
	}
}

// TestSchema checks what Open leaves in the file: WAL mode and one
// schema_migrations row per embedded migration, however often it is opened.
func TestSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	for range 2 {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open = %v", err)
		}
		s.Close()
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v, want wal", mode, err)
	}
	var versions, names string
	if err := db.QueryRow(`SELECT group_concat(version), group_concat(name) FROM schema_migrations`).Scan(&versions, &names); err != nil {
		t.Fatal(err)
	}
	if wantVersions, wantNames := wantMigrations(t); versions != wantVersions || names != wantNames {
		t.Errorf("schema_migrations = %s %s, want %s %s", versions, names, wantVersions, wantNames)
	}
	var indexes string
	if err := db.QueryRow(`SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master
		WHERE type = 'index' AND tbl_name = 'deployments' AND sql IS NOT NULL ORDER BY name)`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if want := "deployments_by_app,deployments_by_app_state,deployments_by_build,deployments_by_commit,deployments_by_digest,deployments_by_env,deployments_by_release,deployments_by_state"; indexes != want {
		t.Errorf("indexes of deployments = %s, want %s", indexes, want)
	}
}

// TestDeploymentOutlivesBuild: deleting a build (no Store method does, but
// an operator may) keeps its deployments, without the build.
func TestDeploymentOutlivesBuild(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlite.Open(t.Context(), path)
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
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM builds WHERE id = ?`, b.ID); err != nil {
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
// with a build in it: Open applies 002 and keeps the build.
func TestUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	b := &ferry.Build{App: "app", Commit: strings.Repeat("a", 40), CreatedAt: time.Unix(1, 0)}
	if err := s.CreateBuild(t.Context(), b); err != nil {
		t.Fatalf("CreateBuild = %v", err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE deployments; DELETE FROM schema_migrations WHERE version = 2`); err != nil {
		t.Fatalf("undo 002: %v", err)
	}
	db.Close()

	s, err = sqlite.Open(t.Context(), path)
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
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (99, '099_future.sql', '2030-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = sqlite.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "099_future.sql") {
		t.Errorf("Open(newer schema) = %v, want an error naming 099_future.sql", err)
	}
}

func TestOpenError(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be.
	_, err := sqlite.Open(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open(a directory) = %v, want an error naming %s", err, dir)
	}
	if _, err := sqlite.Open(t.Context(), ""); err == nil {
		t.Errorf("Open(\"\") = nil error, want one")
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
				s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "ledger.db"))
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
