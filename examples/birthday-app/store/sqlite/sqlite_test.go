package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ferryhq/ferry/examples/birthday-app/store/sqlite"
	"github.com/ferryhq/ferry/examples/birthday-app/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "birthday.db")
		return func(ctx context.Context) (storetest.Store, error) { return sqlite.Open(ctx, path) }
	})
}

func TestOpenErrors(t *testing.T) {
	for _, path := range []string{
		"",
		filepath.Join(t.TempDir(), "missing-dir", "birthday.db"),
		filepath.Join(t.TempDir(), "what?.db"),
	} {
		if s, err := sqlite.Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) = nil error, want an error", path)
		}
	}
}
