package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// SetCommitTimes implements ledger.Store.
func (s *Store) SetCommitTimes(ctx context.Context, id int64, times []time.Time) error {
	if err := ledger.CheckCommitTimes(id, times); err != nil {
		return err
	}
	utc := make([]time.Time, len(times))
	for i, t := range times {
		utc[i] = t.UTC()
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO deployment_commit_times (deployment_id, times)
		SELECT id, $1 FROM deployments WHERE id = $2 AND state = $3
		ON CONFLICT (deployment_id) DO NOTHING`, utc, id, ferry.DeploymentSucceeded)
	if err != nil {
		return fmt.Errorf("commit times of deployment %d: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Nothing inserted: stored already, or no succeeded deployment id.
	var state ferry.DeploymentState
	err = s.pool.QueryRow(ctx, `SELECT state FROM deployments WHERE id = $1`, id).Scan(&state)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ledger.DeploymentNotFound(id)
	case err != nil:
		return fmt.Errorf("commit times of deployment %d: %w", id, err)
	case state != ferry.DeploymentSucceeded:
		return ledger.CommitTimesRefused(id, state)
	}
	return nil
}

// CommitTimes implements ledger.Store.
func (s *Store) CommitTimes(ctx context.Context, ids []int64) (map[int64][]time.Time, error) {
	out := make(map[int64][]time.Time, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), ledger.CommitTimesChunk)]
		ids = ids[len(chunk):]
		rows, err := s.pool.Query(ctx, `SELECT deployment_id, times FROM deployment_commit_times
			WHERE deployment_id = ANY($1)`, chunk)
		if err != nil {
			return nil, fmt.Errorf("read commit times: %w", err)
		}
		var (
			id int64
			ts []time.Time
		)
		if _, err := pgx.ForEachRow(rows, []any{&id, &ts}, func() error {
			utc := make([]time.Time, len(ts))
			for i, t := range ts {
				utc[i] = t.UTC()
			}
			out[id] = utc
			return nil
		}); err != nil {
			return nil, fmt.Errorf("read commit times: %w", err)
		}
	}
	return out, nil
}
