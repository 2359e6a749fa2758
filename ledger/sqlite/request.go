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

const requestColumns = `id, app, env, ref, commit_sha, digest, build_id, author, requester, reason, state, required, result,
	request_action_id, action_id, created_at, expires_at, decided_at`

func scanRequest(row scanner) (*ferry.ReleaseRequest, error) {
	var (
		q                ferry.ReleaseRequest
		created, expires string
		decided          sql.NullString
	)
	if err := row.Scan(&q.ID, &q.App, &q.Env, &q.Ref, &q.Commit, &q.Digest, &q.BuildID, &q.Author, &q.Requester, &q.Reason,
		&q.State, &q.Required, &q.Result, &q.RequestActionID, &q.ActionID, &created, &expires, &decided); err != nil {
		return nil, err
	}
	var err error
	if q.CreatedAt, err = decTime(created); err != nil {
		return nil, err
	}
	if q.ExpiresAt, err = decTime(expires); err != nil {
		return nil, err
	}
	if q.DecidedAt, err = decNullTime(decided); err != nil {
		return nil, err
	}
	q.Approvals = []ferry.Approver{}
	return &q, nil
}

// querier is what reads a request: the store's reader or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readRequest reads request id with its approvals through q.
func readRequest(ctx context.Context, q querier, id int64) (*ferry.ReleaseRequest, error) {
	r, err := scanRequest(q.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM release_requests WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
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
	args := make([]any, len(rs))
	for i, r := range rs {
		byID[r.ID], args[i] = r, r.ID
	}
	rows, err := q.QueryContext(ctx, `SELECT request_id, actor, role, reason, approved_at FROM release_approvals
		WHERE request_id IN (`+placeholders(len(rs))+`) ORDER BY approved_at, actor`, args...)
	if err != nil {
		return fmt.Errorf("read approvals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id int64
			a  ferry.Approver
			at string
		)
		if err := rows.Scan(&id, &a.Actor, &a.Role, &a.Reason, &at); err != nil {
			return fmt.Errorf("read approvals: %w", err)
		}
		if a.At, err = decTime(at); err != nil {
			return fmt.Errorf("read approvals: %w", err)
		}
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
	err := s.w.QueryRowContext(ctx, `
		INSERT INTO release_requests (app, env, ref, commit_sha, digest, build_id, author, requester, reason, state, required, result,
			request_action_id, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.App, r.Env, r.Ref, r.Commit, r.Digest, r.BuildID, r.Author, r.Requester, r.Reason, r.State, r.Required, r.Result,
		r.RequestActionID, encTime(r.CreatedAt), encTime(r.ExpiresAt),
	).Scan(&r.ID)
	if err != nil {
		return fmt.Errorf("record release request to %s: %w", r.Env, err)
	}
	return nil
}

// ReleaseRequest implements ledger.RequestStore.
func (s *Store) ReleaseRequest(ctx context.Context, id int64) (*ferry.ReleaseRequest, error) {
	return readRequest(ctx, s.r, id)
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
	rs, err := queryList(ctx, s.r, "list release requests", scanRequest, query, args...)
	if err != nil {
		return nil, err
	}
	if err := addApprovals(ctx, s.r, rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// AddApproval implements ledger.RequestStore: the write transaction holds
// the write lock from its start, so the read and the writes are one step.
func (s *Store) AddApproval(ctx context.Context, id int64, a ferry.Approver, seen int, complete bool) error {
	if err := ledger.PrepareApproval(id, &a); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("approve release request %d: %w", id, err)
	}
	defer tx.Rollback()
	r, err := readRequest(ctx, tx, id)
	if err != nil {
		return err
	}
	if err := ledger.CanApprove(r, a.Actor, seen); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO release_approvals (request_id, actor, role, reason, approved_at) VALUES (?, ?, ?, ?, ?)`,
		id, a.Actor, string(a.Role), a.Reason, encTime(a.At)); err != nil {
		if isUnique(err) {
			return ferry.Errorf(ferry.ECONFLICT, "%s approved release request %d already", a.Actor, id)
		}
		return fmt.Errorf("approve release request %d: %w", id, err)
	}
	if complete {
		if _, err := tx.ExecContext(ctx, `UPDATE release_requests SET state = ?, decided_at = ? WHERE id = ?`,
			string(ferry.RequestApproved), encTime(a.At), id); err != nil {
			return fmt.Errorf("approve release request %d: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("approve release request %d: %w", id, err)
	}
	return nil
}

// CloseReleaseRequest implements ledger.RequestStore.
func (s *Store) CloseReleaseRequest(ctx context.Context, id int64, to ferry.RequestState, result string, at time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("close release request %d: %w", id, err)
	}
	defer tx.Rollback()
	r, err := readRequest(ctx, tx, id)
	if err != nil {
		return err
	}
	if err := ledger.CanClose(r, to, at); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE release_requests SET state = ?, result = ?, decided_at = ? WHERE id = ?`,
		string(to), ledger.StoreText(result, ledger.MaxText), encTime(at), id); err != nil {
		return fmt.Errorf("close release request %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("close release request %d: %w", id, err)
	}
	return nil
}

// SetRequestAction implements ledger.RequestStore.
func (s *Store) SetRequestAction(ctx context.Context, id, actionID int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("link release request %d: %w", id, err)
	}
	defer tx.Rollback()
	r, err := readRequest(ctx, tx, id)
	if err != nil {
		return err
	}
	if err := ledger.CanSetAction(r, actionID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE release_requests SET action_id = ? WHERE id = ?`, actionID, id); err != nil {
		return fmt.Errorf("link release request %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("link release request %d: %w", id, err)
	}
	return nil
}
