// Package ledgerdb opens ferry's ledger from a URL, choosing the engine by
// the URL's scheme. It is apart from package ledger because the engines
// import ledger; callers that know their engine may use ledger/sqlite or
// ledger/postgres directly.
package ledgerdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/postgres"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// Open opens the ledger at url:
//
//	sqlite:///abs/path/ledger.db   a SQLite file (created if missing)
//	sqlite://relative/ledger.db    relative to the working directory
//	postgres://user:pass@host/db   PostgreSQL (also postgresql://; query
//	                               parameters such as sslmode are passed on)
//
// What follows sqlite:// is a file path taken literally (no %-decoding and
// no query string). Errors never repeat the URL, which may hold a password.
func Open(ctx context.Context, url string) (ledger.Store, error) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return nil, fmt.Errorf("ledger URL has no scheme: want sqlite:///path/to/ledger.db or postgres://…")
	}
	switch scheme {
	case "sqlite":
		if rest == "" {
			return nil, fmt.Errorf("ledger URL sqlite:// has no file path")
		}
		return sqlite.Open(ctx, rest)
	case "postgres", "postgresql":
		return postgres.Open(ctx, url)
	}
	return nil, fmt.Errorf("ledger URL has unknown scheme %q: want sqlite or postgres", scheme)
}
