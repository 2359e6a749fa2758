package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/store/mysql"
	"github.com/ferryhq/ferry/examples/birthday-app/store/postgres"
	"github.com/ferryhq/ferry/examples/birthday-app/store/sqlite"
)

// store is what the server needs of any engine.
type store interface {
	birthday.Store
	Close() error
}

// storeKind is the engine a -db URL names.
func storeKind(dbURL string) (string, error) {
	scheme, rest, ok := strings.Cut(dbURL, "://")
	switch {
	case !ok:
		return "", fmt.Errorf("want a URL such as sqlite://birthday.db, postgres://… or mysql://…")
	case scheme == "sqlite":
		if rest == "" {
			return "", fmt.Errorf("sqlite:// needs a file path, such as sqlite://birthday.db or sqlite:///var/lib/birthday.db")
		}
		return "sqlite", nil
	case scheme == "postgres" || scheme == "postgresql":
		return "postgres", nil
	case scheme == "mysql":
		return "mysql", nil
	}
	return "", fmt.Errorf("unsupported database %q; want sqlite://, postgres:// or mysql://", scheme)
}

// openStore opens the engine the URL names and applies its migrations.
func openStore(ctx context.Context, dbURL string) (store, error) {
	kind, err := storeKind(dbURL)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "sqlite":
		return sqlite.Open(ctx, strings.TrimPrefix(dbURL, "sqlite://"))
	case "postgres":
		return postgres.Open(ctx, dbURL)
	default:
		return mysql.Open(ctx, dbURL)
	}
}

// redact hides the password of a database URL, for the logs.
func redact(dbURL string) string {
	if strings.HasPrefix(dbURL, "sqlite://") {
		return dbURL
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
