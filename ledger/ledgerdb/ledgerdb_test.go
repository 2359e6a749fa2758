package ledgerdb_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/ledgerdb"
)

// TestOpenSQLite opens absolute and relative sqlite URLs and checks that
// the file lands where the URL says and keeps what was written.
func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	tests := []struct {
		url  string
		file string
	}{
		{"sqlite://" + filepath.Join(dir, "abs", "ledger.db"), filepath.Join(dir, "abs", "ledger.db")},
		{"sqlite://rel/ledger.db", filepath.Join(dir, "rel", "ledger.db")},
		{"sqlite://plain.db", filepath.Join(dir, "plain.db")},
	}
	for _, tt := range tests {
		s, err := ledgerdb.Open(t.Context(), tt.url)
		if err != nil {
			t.Errorf("Open(%s) = %v", tt.url, err)
			continue
		}
		err = s.AddEvent(t.Context(), &ferry.Event{Kind: "test", Time: time.Unix(1, 0), Message: tt.url})
		s.Close()
		if err != nil {
			t.Errorf("Open(%s): AddEvent = %v", tt.url, err)
			continue
		}
		if _, err := os.Stat(tt.file); err != nil {
			t.Errorf("Open(%s) made no %s: %v", tt.url, tt.file, err)
			continue
		}
		// Reopen through the URL: the event is there.
		s, err = ledgerdb.Open(t.Context(), tt.url)
		if err != nil {
			t.Fatalf("reopen %s: %v", tt.url, err)
		}
		got, err := s.Events(t.Context(), ledger.EventFilter{})
		s.Close()
		if err != nil || len(got) != 1 || got[0].Message != tt.url {
			t.Errorf("Open(%s) again: Events = %v, %v, want the one event", tt.url, got, err)
		}
	}
}

// TestOpenPostgresRoute shows that postgres URLs reach the PostgreSQL engine,
// against an address where nothing listens (the engine's own suite uses a
// real server).
func TestOpenPostgresRoute(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, url := range []string{
		"postgres://ferry:s3cret@127.0.0.1:1/ferry?sslmode=disable",
		"postgresql://ferry:s3cret@127.0.0.1:1/ferry?sslmode=disable",
	} {
		_, err := ledgerdb.Open(ctx, url)
		if err == nil || !strings.Contains(err.Error(), "open postgres ledger 127.0.0.1:1/ferry") {
			t.Errorf("Open(%s) = %v, want the postgres engine's connect error", url, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%s) error shows the password: %v", url, err)
		}
	}
}

func TestOpenBadURL(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"mysql://root:s3cret@127.0.0.1/ferry", `unknown scheme "mysql"`},
		{"/var/lib/ferry/ledger.db", "no scheme"},
		{"", "no scheme"},
		{"sqlite://", "no file path"},
		{"SQLITE:///x.db", `unknown scheme "SQLITE"`},
	}
	for _, tt := range tests {
		s, err := ledgerdb.Open(t.Context(), tt.url)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) = nil error, want one containing %q", tt.url, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) = %v, want an error containing %q and no password", tt.url, err, tt.want)
		}
	}
}
