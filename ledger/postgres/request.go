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

const requestColumns = `id, app, env, ref, commit_sha, digest, build_id, author, requester, reason, state, required, result,
	request_action_id, action_id, created_at, expires_at, decided_at`

func scanRequest(row pgx.Row) (*ferry.ReleaseRequest, error) {
	var (
		q       ferry.ReleaseRequest
		decided *time.Time
	)
	if err := row.Scan(&q.ID, &q.App, &q.Env, &q.Ref, &q.Commit, &q.Digest, &q.BuildID, &q.Author, &q.Requester, &q.Reason,
		&q.State, &q.Required, &q.Result, &q.RequestActionID, &q.ActionID, &q.CreatedAt, &q.ExpiresAt, &decided); err != nil {
		return nil, err
	}
	q.CreatedAt, q.ExpiresAt, q.DecidedAt = q.CreatedAt.UTC(), q.ExpiresAt.UTC(), decNullTime(decided)
	q.Approvals = []ferry.Approver{}
	return &q, nil
}

// querier is what reads a request: the pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readRequest reads request id with its approvals through q; lock adds
// FOR UPDATE.
func readRequest(ctx context.Context, q querier, id int64, lock bool) (*ferry.ReleaseRequest, error) {
	query := `SELECT ` + requestColumns + ` FROM release_requests WHERE id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	r, err := scanRequest(q.QueryRow(ctx, query, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ledger.RequestNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get release request %d: %w", id, err)
	}
	if err := addApprovals(ctx, q, []*ferry.ReleaseRequest{r}); err != nil {
		return nil, err
	}
	return r, nil
}

// addApprovals reads the approvals of rs, oldest first.
func addApprovals(ctx context.Context, q querier, rs []*ferry.ReleaseRequest) error {
	if len(rs) == 0 {
		return nil
	}
	byID := map[int64]*ferry.ReleaseRequest{}
	ids := make([]int64, len(rs))
	for i, r := range rs {
		byID[r.ID], ids[i] = r, r.ID
	}
	rows, err := q.Query(ctx, `SELECT request_id, actor, role, reason, approved_at FROM release_approvals
		WHERE request_id = ANY($1) ORDER BY approved_at, actor`, ids)
	if err != nil {
		return fmt.Errorf("read approvals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id int64
			a  ferry.Approver
		)
		if err := rows.Scan(&id, &a.Actor, &a.Role, &a.Reason, &a.At); err != nil {
			return fmt.Errorf("read approvals: %w", err)
		}
		a.At = a.At.UTC()
		byID[id].Approvals = append(byID[id].Approvals, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read approvals: %w", err)
	}
	return nil
}

// CreateReleaseRequest implements ledger.RequestStore.
func (s *Store) CreateReleaseRequest(ctx context.Context, r *ferry.ReleaseRequest) error {
	if err := ledger.PrepareCreateRequest(r); err != nil {
		return err
	}
	err := s.pool.QueryRow(ctx, `
		INSERT INTO release_requests (app, env, ref, commit_sha, digest, build_id, author, requester, reason, state, required, result,
			request_action_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`,
		r.App, r.Env, r.Ref, r.Commit, r.Digest, r.BuildID, r.Author, r.Requester, r.Reason, string(r.State), r.Required, r.Result,
		r.RequestActionID, r.CreatedAt, r.ExpiresAt,
	).Scan(&r.ID)
	if err != nil {
		return fmt.Errorf("record release request to %s: %w", r.Env, err)
	}
	return nil
}

// ReleaseRequest implements ledger.RequestStore.
func (s *Store) ReleaseRequest(ctx context.Context, id int64) (*ferry.ReleaseRequest, error) {
	return readRequest(ctx, s.pool, id, false)
}

// ReleaseRequests implements ledger.RequestStore.
func (s *Store) ReleaseRequests(ctx context.Context, f ledger.RequestFilter) ([]*ferry.ReleaseRequest, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	query, args := page{
		eq:     [][2]string{{"app", f.App}, {"env", f.Env}},
		states: ledger.Strings(f.States), beforeID: f.BeforeID, limit: f.PageSize(),
	}.query(requestColumns, "release_requests")
	rs, err := queryList(ctx, s.pool, "list release requests", scanRequest, query, args...)
	if err != nil {
		return nil, err
	}
	if err := addApprovals(ctx, s.pool, rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// inRequest runs change on request id read FOR UPDATE, in one
// transaction; what names the change in errors.
func (s *Store) inRequest(ctx context.Context, id int64, what string, change func(tx pgx.Tx, r *ferry.ReleaseRequest) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		r, err := readRequest(ctx, tx, id, true)
		if err != nil {
			return err
		}
		return change(tx, r)
	})
	if _, ok := errors.AsType[*ferry.Error](err); ok {
		return err
	}
	if err != nil {
		return fmt.Errorf("%s release request %d: %w", what, id, err)
	}
	return nil
}

// AddApproval implements ledger.RequestStore; the request's row lock
// queues concurrent approvals.
func (s *Store) AddApproval(ctx context.Context, id int64, a ferry.Approver, seen int, complete bool) error {
	if err := ledger.PrepareApproval(id, &a); err != nil {
		return err
	}
	return s.inRequest(ctx, id, "approve", func(tx pgx.Tx, r *ferry.ReleaseRequest) error {
		if err := ledger.CanApprove(r, a.Actor, seen); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO release_approvals (request_id, actor, role, reason, approved_at) VALUES ($1, $2, $3, $4, $5)`,
			id, a.Actor, string(a.Role), a.Reason, a.At); err != nil {
			if isUnique(err) {
				return ferry.Errorf(ferry.ECONFLICT, "%s approved release request %d already", a.Actor, id)
			}
			return err
		}
		if !complete {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE release_requests SET state = $1, decided_at = $2 WHERE id = $3`, string(ferry.RequestApproved), a.At, id)
		return err
	})
}

// CloseReleaseRequest implements ledger.RequestStore.
func (s *Store) CloseReleaseRequest(ctx context.Context, id int64, to ferry.RequestState, result string, at time.Time) error {
	return s.inRequest(ctx, id, "close", func(tx pgx.Tx, r *ferry.ReleaseRequest) error {
		if err := ledger.CanClose(r, to, at); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE release_requests SET state = $1, result = $2, decided_at = $3 WHERE id = $4`,
			string(to), ledger.StoreText(result, ledger.MaxText), at.UTC(), id)
		return err
	})
}

// SetRequestAction implements ledger.RequestStore.
func (s *Store) SetRequestAction(ctx context.Context, id, actionID int64) error {
	return s.inRequest(ctx, id, "link", func(tx pgx.Tx, r *ferry.ReleaseRequest) error {
		if err := ledger.CanSetAction(r, actionID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE release_requests SET action_id = $1 WHERE id = $2`, actionID, id)
		return err
	})
}
