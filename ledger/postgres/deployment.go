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

const deploymentColumns = `id, app, env, kind, state, build_id, commit_sha, digest, release,
	replicas, previous_digest, actor, reason, error, created_at, started_at, finished_at`

func scanDeployment(row pgx.Row) (*ferry.Deployment, error) {
	var (
		d                 ferry.Deployment
		buildID           *int64
		started, finished *time.Time
	)
	if err := row.Scan(&d.ID, &d.App, &d.Env, &d.Kind, &d.State, &buildID, &d.Commit, &d.Digest, &d.Release,
		&d.Replicas, &d.Previous, &d.Actor, &d.Reason, &d.Error, &d.CreatedAt, &started, &finished); err != nil {
		return nil, err
	}
	if buildID != nil {
		d.BuildID = *buildID
	}
	d.CreatedAt = d.CreatedAt.UTC()
	d.StartedAt, d.FinishedAt = decNullTime(started), decNullTime(finished)
	return &d, nil
}

// CreateDeployment implements ledger.Store.
func (s *Store) CreateDeployment(ctx context.Context, d *ferry.Deployment) error {
	if err := ledger.PrepareCreateDeployment(d); err != nil {
		return err
	}
	return insertDeployment(ctx, s.pool, d)
}

// rowQuerier is a pool or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// insertDeployment inserts the prepared deployment d and sets d.ID.
func insertDeployment(ctx context.Context, q rowQuerier, d *ferry.Deployment) error {
	err := q.QueryRow(ctx, `
		INSERT INTO deployments (app, env, kind, state, build_id, commit_sha, digest, release,
		                         replicas, previous_digest, actor, reason, error,
		                         created_at, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
		RETURNING id`,
		d.App, d.Env, string(d.Kind), string(d.State), nullID(d.BuildID), d.Commit, d.Digest, d.Release,
		d.Replicas, d.Previous, d.Actor, d.Reason, d.Error,
		d.CreatedAt.UTC(), nullTime(d.StartedAt), nullTime(d.FinishedAt),
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
	d, err := scanDeployment(s.pool.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	d, err := scanDeployment(s.pool.QueryRow(ctx, `
		SELECT `+deploymentColumns+` FROM deployments
		WHERE app = $1 AND env = $2 AND state = $3
		ORDER BY id DESC LIMIT 1`,
		app, env, string(ferry.DeploymentSucceeded)))
	if errors.Is(err, pgx.ErrNoRows) {
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
		args  params
	)
	for _, eq := range []struct{ column, value string }{
		{"app", f.App}, {"env", f.Env}, {"commit_sha", f.Commit}, {"digest", f.Digest},
	} {
		if eq.value != "" {
			where = append(where, eq.column+" = "+args.add(eq.value))
		}
	}
	if f.Release != "" {
		// The literal release <> '' lets the planner use the partial
		// index deployments_by_release.
		where = append(where, "release = "+args.add(f.Release)+" AND release <> ''")
	}
	if len(f.Kinds) > 0 {
		kinds := make([]string, len(f.Kinds))
		for i, k := range f.Kinds {
			kinds[i] = string(k)
		}
		where = append(where, "kind = ANY("+args.add(kinds)+")")
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		where = append(where, "state = ANY("+args.add(states)+")")
	}
	if f.BeforeID > 0 {
		where = append(where, "id < "+args.add(f.BeforeID))
	}
	query := `SELECT ` + deploymentColumns + ` FROM deployments`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ` + args.add(f.PageSize())

	return queryList(ctx, s.pool, "list deployments", scanDeployment, query, args...)
}

// UpdateDeployment implements ledger.Store.
func (s *Store) UpdateDeployment(ctx context.Context, d *ferry.Deployment) error {
	if err := ledger.PrepareUpdateDeployment(d); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE deployments
		SET state = $1, error = $2, reason = $3, replicas = $4, release = $5,
		    started_at = $6, finished_at = $7, previous_digest = $8
		WHERE id = $9`,
		string(d.State), d.Error, d.Reason, d.Replicas, d.Release,
		nullTime(d.StartedAt), nullTime(d.FinishedAt), d.Previous, d.ID)
	if err != nil {
		return fmt.Errorf("update deployment %d: %w", d.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return ledger.DeploymentNotFound(d.ID)
	}
	return nil
}

// TransitionDeployment implements ledger.Store. As in TransitionBuild,
// SELECT … FOR UPDATE makes concurrent transitions of one deployment queue.
func (s *Store) TransitionDeployment(ctx context.Context, id int64, from, to ferry.DeploymentState, errMsg string, at time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		d, err := scanDeployment(tx.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ledger.DeploymentNotFound(id)
		}
		if err != nil {
			return err
		}
		if err := ledger.TransitionDeployment(d, from, to, errMsg, at); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE deployments SET state = $1, error = $2, started_at = $3, finished_at = $4 WHERE id = $5`,
			string(d.State), d.Error, nullTime(d.StartedAt), nullTime(d.FinishedAt), id)
		return err
	})
	if _, ok := errors.AsType[*ferry.Error](err); ok {
		return err
	}
	if err != nil {
		return fmt.Errorf("transition deployment %d: %w", id, err)
	}
	return nil
}
