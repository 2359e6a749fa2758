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

const actionColumns = `id, app, env, kind, ref, replicas, allow_downgrade, override, when_open, actor, reason, state, result,
	deployment_id, created_at, started_at, finished_at`

func scanAction(row pgx.Row) (*ferry.Action, error) {
	var (
		a                 ferry.Action
		deployment        *int64
		started, finished *time.Time
	)
	if err := row.Scan(&a.ID, &a.App, &a.Env, &a.Kind, &a.Ref, &a.Replicas, &a.AllowDowngrade, &a.Override, &a.WhenOpen, &a.Actor, &a.Reason,
		&a.State, &a.Result, &deployment, &a.CreatedAt, &started, &finished); err != nil {
		return nil, err
	}
	if deployment != nil {
		a.DeploymentID = *deployment
	}
	a.CreatedAt = a.CreatedAt.UTC()
	a.StartedAt, a.FinishedAt = decNullTime(started), decNullTime(finished)
	return &a, nil
}

// CreateAction implements ledger.ActionStore.
func (s *Store) CreateAction(ctx context.Context, a *ferry.Action) error {
	if err := ledger.PrepareCreateAction(a); err != nil {
		return err
	}
	err := s.pool.QueryRow(ctx, `
		INSERT INTO actions (app, env, kind, ref, replicas, allow_downgrade, override, when_open, actor, reason, state, result, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
		a.App, a.Env, string(a.Kind), a.Ref, a.Replicas, a.AllowDowngrade, a.Override, a.WhenOpen, a.Actor, a.Reason, string(a.State), a.Result, a.CreatedAt,
	).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("record %s of %s: %w", a.Kind, a.Env, err)
	}
	return nil
}

// Action implements ledger.ActionStore.
func (s *Store) Action(ctx context.Context, id int64) (*ferry.Action, error) {
	a, err := scanAction(s.pool.QueryRow(ctx, `SELECT `+actionColumns+` FROM actions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ledger.ActionNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get action %d: %w", id, err)
	}
	return a, nil
}

// Actions implements ledger.ActionStore.
func (s *Store) Actions(ctx context.Context, f ledger.ActionFilter) ([]*ferry.Action, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	query, args := page{
		eq:     [][2]string{{"app", f.App}, {"env", f.Env}},
		states: ledger.Strings(f.States), beforeID: f.BeforeID, limit: f.PageSize(),
	}.query(actionColumns, "actions")
	return queryList(ctx, s.pool, "list actions", scanAction, query, args...)
}

// TransitionAction implements ledger.ActionStore. SELECT … FOR UPDATE
// makes concurrent transitions of one action queue.
func (s *Store) TransitionAction(ctx context.Context, id int64, from, to ferry.ActionState, result string, at time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		a, err := scanAction(tx.QueryRow(ctx, `SELECT `+actionColumns+` FROM actions WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ledger.ActionNotFound(id)
		}
		if err != nil {
			return err
		}
		if err := ledger.TransitionAction(a, from, to, result, at); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE actions SET state = $1, result = $2, started_at = $3, finished_at = $4 WHERE id = $5`,
			string(a.State), a.Result, nullTime(a.StartedAt), nullTime(a.FinishedAt), id)
		return err
	})
	if _, ok := errors.AsType[*ferry.Error](err); ok {
		return err
	}
	if err != nil {
		return fmt.Errorf("transition action %d: %w", id, err)
	}
	return nil
}

// CreateActionDeployment implements ledger.ActionStore.
func (s *Store) CreateActionDeployment(ctx context.Context, actionID int64, d *ferry.Deployment) error {
	if err := ledger.PrepareCreateDeployment(d); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		a, err := scanAction(tx.QueryRow(ctx, `SELECT `+actionColumns+` FROM actions WHERE id = $1 FOR UPDATE`, actionID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ledger.ActionNotFound(actionID)
		}
		if err != nil {
			return err
		}
		if err := ledger.CanStartDeployment(a, d); err != nil {
			return err
		}
		if err := insertDeployment(ctx, tx, d); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE actions SET deployment_id = $1 WHERE id = $2`, d.ID, actionID)
		return err
	})
	if err != nil {
		d.ID = 0
	}
	if _, ok := errors.AsType[*ferry.Error](err); ok {
		return err
	}
	if err != nil {
		return fmt.Errorf("record deployment of action %d: %w", actionID, err)
	}
	return nil
}
