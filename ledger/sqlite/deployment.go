package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

const deploymentColumns = `id, app, env, kind, state, build_id, commit_sha, digest, release,
	replicas, previous_digest, actor, reason, error, created_at, started_at, finished_at`

func scanDeployment(row scanner) (*ferry.Deployment, error) {
	var (
		d                 ferry.Deployment
		buildID           sql.NullInt64
		created           string
		started, finished sql.NullString
	)
	if err := row.Scan(&d.ID, &d.App, &d.Env, &d.Kind, &d.State, &buildID, &d.Commit, &d.Digest, &d.Release,
		&d.Replicas, &d.Previous, &d.Actor, &d.Reason, &d.Error, &created, &started, &finished); err != nil {
		return nil, err
	}
	d.BuildID = buildID.Int64
	var err error
	if d.CreatedAt, err = decTime(created); err != nil {
		return nil, err
	}
	if d.StartedAt, err = decNullTime(started); err != nil {
		return nil, err
	}
	if d.FinishedAt, err = decNullTime(finished); err != nil {
		return nil, err
	}
	return &d, nil
}

// CreateDeployment implements ledger.Store.
func (s *Store) CreateDeployment(ctx context.Context, d *ferry.Deployment) error {
	if err := ledger.PrepareCreateDeployment(d); err != nil {
		return err
	}
	return insertDeployment(ctx, s.w, d)
}

// rowQuerier is a *sql.DB or a *sql.Tx.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// insertDeployment inserts the prepared deployment d and sets d.ID.
func insertDeployment(ctx context.Context, q rowQuerier, d *ferry.Deployment) error {
	err := q.QueryRowContext(ctx, `
		INSERT INTO deployments (app, env, kind, state, build_id, commit_sha, digest, release,
		                         replicas, previous_digest, actor, reason, error,
		                         created_at, started_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		d.App, d.Env, d.Kind, d.State, nullID(d.BuildID), d.Commit, d.Digest, d.Release,
		d.Replicas, d.Previous, d.Actor, d.Reason, d.Error,
		encTime(d.CreatedAt), nullTime(d.StartedAt), nullTime(d.FinishedAt),
	).Scan(&d.ID)
	if isForeignKey(err) {
		return ledger.BuildNotFound(d.BuildID)
	}
	if err != nil {
		return fmt.Errorf("create deployment of %s to %s: %w", d.App, d.Env, err)
	}
	return nil
}

// Deployment implements ledger.Store.
func (s *Store) Deployment(ctx context.Context, id int64) (*ferry.Deployment, error) {
	d, err := scanDeployment(s.r.QueryRowContext(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.DeploymentNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get deployment %d: %w", id, err)
	}
	return d, nil
}

// Current implements ledger.Store.
func (s *Store) Current(ctx context.Context, app, env string) (*ferry.Deployment, error) {
	if err := ledger.CheckEnv(app, env); err != nil {
		return nil, err
	}
	d, err := scanDeployment(s.r.QueryRowContext(ctx, `
		SELECT `+deploymentColumns+` FROM deployments
		WHERE app = ? AND env = ? AND state = ?
		ORDER BY id DESC LIMIT 1`,
		app, env, ferry.DeploymentSucceeded))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.NoCurrentDeployment(app, env)
	}
	if err != nil {
		return nil, fmt.Errorf("current deployment of %s in %s: %w", app, env, err)
	}
	return d, nil
}

// Deployments implements ledger.Store.
func (s *Store) Deployments(ctx context.Context, f ledger.DeploymentFilter) ([]*ferry.Deployment, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	for _, eq := range []struct{ column, value string }{
		{"app", f.App}, {"env", f.Env}, {"commit_sha", f.Commit}, {"digest", f.Digest},
	} {
		if eq.value != "" {
			where, args = append(where, eq.column+" = ?"), append(args, eq.value)
		}
	}
	if f.Release != "" {
		// The literal release <> '' lets the planner use the partial
		// index deployments_by_release.
		where, args = append(where, "release = ? AND release <> ''"), append(args, f.Release)
	}
	if len(f.Kinds) > 0 {
		where = append(where, "kind IN ("+placeholders(len(f.Kinds))+")")
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	if len(f.States) > 0 {
		where = append(where, "state IN ("+placeholders(len(f.States))+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	query := `SELECT ` + deploymentColumns + ` FROM deployments`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.PageSize())

	return queryList(ctx, s.r, "list deployments", scanDeployment, query, args...)
}

// UpdateDeployment implements ledger.Store.
func (s *Store) UpdateDeployment(ctx context.Context, d *ferry.Deployment) error {
	if err := ledger.PrepareUpdateDeployment(d); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `
		UPDATE deployments
		SET state = ?, error = ?, reason = ?, replicas = ?, release = ?,
		    started_at = ?, finished_at = ?, previous_digest = ?
		WHERE id = ?`,
		d.State, d.Error, d.Reason, d.Replicas, d.Release,
		nullTime(d.StartedAt), nullTime(d.FinishedAt), d.Previous, d.ID)
	if err != nil {
		return fmt.Errorf("update deployment %d: %w", d.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update deployment %d: %w", d.ID, err)
	} else if n == 0 {
		return ledger.DeploymentNotFound(d.ID)
	}
	return nil
}

// TransitionDeployment implements ledger.Store. Like TransitionBuild, the
// write transaction holds the write lock from its start.
func (s *Store) TransitionDeployment(ctx context.Context, id int64, from, to ferry.DeploymentState, errMsg string, at time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("transition deployment %d: %w", id, err)
	}
	defer tx.Rollback()
	d, err := scanDeployment(tx.QueryRowContext(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.DeploymentNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("transition deployment %d: %w", id, err)
	}
	if err := ledger.TransitionDeployment(d, from, to, errMsg, at); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE deployments SET state = ?, error = ?, started_at = ?, finished_at = ? WHERE id = ?`,
		d.State, d.Error, nullTime(d.StartedAt), nullTime(d.FinishedAt), id); err != nil {
		return fmt.Errorf("transition deployment %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("transition deployment %d: %w", id, err)
	}
	return nil
}
