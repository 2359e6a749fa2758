package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

const actionColumns = `id, app, env, kind, ref, replicas, allow_downgrade, override, when_open, actor, reason, state, result,
	deployment_id, created_at, started_at, finished_at`

func scanAction(row scanner) (*ferry.Action, error) {
	var (
		a                 ferry.Action
		deployment        sql.NullInt64
		created           string
		started, finished sql.NullString
	)
	if err := row.Scan(&a.ID, &a.App, &a.Env, &a.Kind, &a.Ref, &a.Replicas, &a.AllowDowngrade, &a.Override, &a.WhenOpen, &a.Actor, &a.Reason,
		&a.State, &a.Result, &deployment, &created, &started, &finished); err != nil {
		return nil, err
	}
	a.DeploymentID = deployment.Int64
	var err error
	if a.CreatedAt, err = decTime(created); err != nil {
		return nil, err
	}
	if a.StartedAt, err = decNullTime(started); err != nil {
		return nil, err
	}
	if a.FinishedAt, err = decNullTime(finished); err != nil {
		return nil, err
	}
	return &a, nil
}

// CreateAction implements ledger.ActionStore.
func (s *Store) CreateAction(ctx context.Context, a *ferry.Action) error {
	if err := ledger.PrepareCreateAction(a); err != nil {
		return err
	}
	err := s.w.QueryRowContext(ctx, `
		INSERT INTO actions (app, env, kind, ref, replicas, allow_downgrade, override, when_open, actor, reason, state, result, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		a.App, a.Env, a.Kind, a.Ref, a.Replicas, a.AllowDowngrade, a.Override, a.WhenOpen, a.Actor, a.Reason, a.State, a.Result, encTime(a.CreatedAt),
	).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("record %s of %s: %w", a.Kind, a.Env, err)
	}
	return nil
}

// Action implements ledger.ActionStore.
func (s *Store) Action(ctx context.Context, id int64) (*ferry.Action, error) {
	a, err := scanAction(s.r.QueryRowContext(ctx, `SELECT `+actionColumns+` FROM actions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
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
	return queryList(ctx, s.r, "list actions", scanAction, query, args...)
}

// TransitionAction implements ledger.ActionStore; the write transaction
// holds the write lock from its start, as TransitionDeployment's does.
func (s *Store) TransitionAction(ctx context.Context, id int64, from, to ferry.ActionState, result string, at time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("transition action %d: %w", id, err)
	}
	defer tx.Rollback()
	a, err := scanAction(tx.QueryRowContext(ctx, `SELECT `+actionColumns+` FROM actions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.ActionNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("transition action %d: %w", id, err)
	}
	if err := ledger.TransitionAction(a, from, to, result, at); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE actions SET state = ?, result = ?, started_at = ?, finished_at = ? WHERE id = ?`,
		a.State, a.Result, nullTime(a.StartedAt), nullTime(a.FinishedAt), id); err != nil {
		return fmt.Errorf("transition action %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("transition action %d: %w", id, err)
	}
	return nil
}

// CreateActionDeployment implements ledger.ActionStore.
func (s *Store) CreateActionDeployment(ctx context.Context, actionID int64, d *ferry.Deployment) error {
	if err := ledger.PrepareCreateDeployment(d); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record deployment of action %d: %w", actionID, err)
	}
	defer tx.Rollback()
	a, err := scanAction(tx.QueryRowContext(ctx, `SELECT `+actionColumns+` FROM actions WHERE id = ?`, actionID))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.ActionNotFound(actionID)
	}
	if err != nil {
		return fmt.Errorf("record deployment of action %d: %w", actionID, err)
	}
	if err := ledger.CanStartDeployment(a, d); err != nil {
		return err
	}
	if err := insertDeployment(ctx, tx, d); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE actions SET deployment_id = ? WHERE id = ?`, d.ID, actionID); err != nil {
		d.ID = 0
		return fmt.Errorf("record deployment of action %d: %w", actionID, err)
	}
	if err := tx.Commit(); err != nil {
		d.ID = 0
		return fmt.Errorf("record deployment of action %d: %w", actionID, err)
	}
	return nil
}
