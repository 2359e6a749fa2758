package postgres_test

import (
	"context"
	"testing"

	"github.com/ferryhq/ferry/examples/birthday-app/internal/testdb"
	"github.com/ferryhq/ferry/examples/birthday-app/store/postgres"
	"github.com/ferryhq/ferry/examples/birthday-app/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		url := testdb.Postgres(t)
		return func(ctx context.Context) (storetest.Store, error) { return postgres.Open(ctx, url) }
	})
}
