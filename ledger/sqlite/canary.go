package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

const rolloutColumns = `deployment_id, app, env, step, steps, weight, state, reason, verdict, step_started_at, updated_at`

func scanCanary(row scanner) (*ferry.CanaryRun, error) {
	var (
		r                ferry.CanaryRun
		verdict, updated string
		started          sql.NullString
	)
	if err := row.Scan(&r.DeploymentID, &r.App, &r.Env, &r.Step, &r.Steps, &r.Weight, &r.State, &r.Reason, &verdict, &started, &updated); err != nil {
		return nil, err
	}
	if verdict != "" {
		r.Verdict = []byte(verdict)
	}
	var err error
	if r.StepStarted, err = decNullTime(started); err != nil {
		return nil, err
	}
	r.UpdatedAt, err = decTime(updated)
	return &r, err
}

// SaveCanary implements ledger.CanaryStore: one statement that inserts
// the row, or replaces it unless it has ended, for a deployment of the
// canary's app and environment.
func (s *Store) SaveCanary(ctx context.Context, r *ferry.CanaryRun) error {
	if err := ledger.PrepareCanary(r); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `
		INSERT INTO canaries (`+rolloutColumns+`)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
		WHERE EXISTS (SELECT 1 FROM deployments WHERE id = ? AND app = ? AND env = ?)
		ON CONFLICT (deployment_id) DO UPDATE SET
			step = excluded.step, steps = excluded.steps, weight = excluded.weight, state = excluded.state,
			reason = excluded.reason, verdict = excluded.verdict, step_started_at = excluded.step_started_at,
			updated_at = excluded.updated_at
		WHERE canaries.state NOT IN (?, ?)`,
		r.DeploymentID, r.App, r.Env, r.Step, r.Steps, r.Weight, r.State, r.Reason, string(r.Verdict), nullTime(r.StepStarted), encTime(r.UpdatedAt),
		r.DeploymentID, r.App, r.Env, ferry.CanaryPromoted, ferry.CanaryAborted)
	if err != nil {
		return fmt.Errorf("save the canary of deployment %d: %w", r.DeploymentID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	d, derr := s.Deployment(ctx, r.DeploymentID)
	stored, serr := s.Canary(ctx, r.DeploymentID)
	if serr != nil {
		stored = nil
	}
	return ledger.RefusedCanary(r, d, derr, stored)
}

// Canary implements ledger.CanaryStore.
func (s *Store) Canary(ctx context.Context, deploymentID int64) (*ferry.CanaryRun, error) {
	r, err := scanCanary(s.r.QueryRowContext(ctx, `SELECT `+rolloutColumns+` FROM canaries WHERE deployment_id = ?`, deploymentID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.CanaryNotFound(deploymentID)
	}
	if err != nil {
		return nil, fmt.Errorf("read the canary of deployment %d: %w", deploymentID, err)
	}
	return r, nil
}

// Canaries implements ledger.CanaryStore.
func (s *Store) Canaries(ctx context.Context, app, env string, states []ferry.CanaryState, limit int) ([]*ferry.CanaryRun, error) {
	if err := ledger.CheckKeys(ledger.Key{What: "app", Value: app, Most: ledger.MaxName}, ledger.Key{What: "environment", Value: env, Most: ledger.MaxName}); err != nil {
		return nil, err
	}
	where, args := []string{"app = ?"}, []any{app}
	if env != "" {
		where, args = append(where, "env = ?"), append(args, env)
	}
	if len(states) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(states)-1)+")")
		for _, st := range states {
			args = append(args, st)
		}
	}
	args = append(args, ledger.CanaryPageSize(limit))
	return queryList(ctx, s.r, "list canaries", scanCanary,
		`SELECT `+rolloutColumns+` FROM canaries WHERE `+strings.Join(where, " AND ")+` ORDER BY deployment_id DESC LIMIT ?`, args...)
}
