package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

const rolloutColumns = `deployment_id, app, env, step, steps, weight, state, reason, verdict, step_started_at, updated_at`

func scanCanary(row pgx.Row) (*ferry.CanaryRun, error) {
	var (
		r       ferry.CanaryRun
		verdict string
		started *time.Time
	)
	if err := row.Scan(&r.DeploymentID, &r.App, &r.Env, &r.Step, &r.Steps, &r.Weight, &r.State, &r.Reason, &verdict, &started, &r.UpdatedAt); err != nil {
		return nil, err
	}
	if verdict != "" {
		r.Verdict = []byte(verdict)
	}
	r.StepStarted, r.UpdatedAt = decNullTime(started), r.UpdatedAt.UTC()
	return &r, nil
}

// SaveCanary implements ledger.CanaryStore: one statement that inserts
// the row, or replaces it unless it has ended, for a deployment of the
// canary's app and environment.
func (s *Store) SaveCanary(ctx context.Context, r *ferry.CanaryRun) error {
	if err := ledger.PrepareCanary(r); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO canaries (`+rolloutColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
		WHERE EXISTS (SELECT 1 FROM deployments WHERE id = $1 AND app = $2 AND env = $3)
		ON CONFLICT (deployment_id) DO UPDATE SET
			step = excluded.step, steps = excluded.steps, weight = excluded.weight, state = excluded.state,
			reason = excluded.reason, verdict = excluded.verdict, step_started_at = excluded.step_started_at,
			updated_at = excluded.updated_at
		WHERE canaries.state NOT IN ($12, $13)`,
		r.DeploymentID, r.App, r.Env, r.Step, r.Steps, r.Weight, r.State, r.Reason, string(r.Verdict), nullTime(r.StepStarted), r.UpdatedAt,
		ferry.CanaryPromoted, ferry.CanaryAborted)
	if err != nil {
		return fmt.Errorf("save the canary of deployment %d: %w", r.DeploymentID, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
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
	r, err := scanCanary(s.pool.QueryRow(ctx, `SELECT `+rolloutColumns+` FROM canaries WHERE deployment_id = $1`, deploymentID))
	if errors.Is(err, pgx.ErrNoRows) {
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
	var args params
	where := []string{"app = " + args.add(app)}
	if env != "" {
		where = append(where, "env = "+args.add(env))
	}
	if len(states) > 0 {
		where = append(where, "state = ANY("+args.add(ledger.Strings(states))+")")
	}
	lim := args.add(ledger.CanaryPageSize(limit))
	return queryList(ctx, s.pool, "list canaries", scanCanary,
		`SELECT `+rolloutColumns+` FROM canaries WHERE `+strings.Join(where, " AND ")+` ORDER BY deployment_id DESC LIMIT `+lim, args...)
}
