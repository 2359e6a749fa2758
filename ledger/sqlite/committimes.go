package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// SetCommitTimes implements ledger.Store. The times are a JSON array of
// stored times (encTime).
func (s *Store) SetCommitTimes(ctx context.Context, id int64, times []time.Time) error {
	if err := ledger.CheckCommitTimes(id, times); err != nil {
		return err
	}
	enc := make([]string, len(times))
	for i, t := range times {
		enc[i] = encTime(t)
	}
	js, err := json.Marshal(enc)
	if err != nil {
		return fmt.Errorf("commit times of deployment %d: %w", id, err)
	}
	res, err := s.w.ExecContext(ctx, `
		INSERT INTO deployment_commit_times (deployment_id, times)
		SELECT id, ? FROM deployments WHERE id = ? AND state = ?
		ON CONFLICT (deployment_id) DO NOTHING`, string(js), id, ferry.DeploymentSucceeded)
	if err != nil {
		return fmt.Errorf("commit times of deployment %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("commit times of deployment %d: %w", id, err)
	} else if n == 1 {
		return nil
	}
	// Nothing inserted: stored already, or no succeeded deployment id.
	var state ferry.DeploymentState
	err = s.r.QueryRowContext(ctx, `SELECT state FROM deployments WHERE id = ?`, id).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
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
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.r.QueryContext(ctx, `SELECT deployment_id, times FROM deployment_commit_times
			WHERE deployment_id IN (`+placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read commit times: %w", err)
		}
		err = func() error {
			defer rows.Close()
			for rows.Next() {
				var (
					id  int64
					js  string
					enc []string
				)
				if err := rows.Scan(&id, &js); err != nil {
					return err
				}
				if err := json.Unmarshal([]byte(js), &enc); err != nil {
					return fmt.Errorf("deployment %d: %w", id, err)
				}
				ts := make([]time.Time, len(enc))
				for i, e := range enc {
					if ts[i], err = decTime(e); err != nil {
						return fmt.Errorf("deployment %d: %w", id, err)
					}
				}
				out[id] = ts
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, fmt.Errorf("read commit times: %w", err)
		}
	}
	return out, nil
}
