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

const buildColumns = `id, app, commit_sha, branch, subject, author, triggered_by,
	state, reason, image, digest, created_at, started_at, finished_at`

type scanner interface{ Scan(dest ...any) error }

func scanBuild(row scanner) (*ferry.Build, error) {
	var (
		b                 ferry.Build
		created           string
		started, finished sql.NullString
	)
	if err := row.Scan(&b.ID, &b.App, &b.Commit, &b.Branch, &b.Subject, &b.Author, &b.Trigger,
		&b.State, &b.Reason, &b.Image, &b.Digest, &created, &started, &finished); err != nil {
		return nil, err
	}
	var err error
	if b.CreatedAt, err = decTime(created); err != nil {
		return nil, err
	}
	if b.StartedAt, err = decNullTime(started); err != nil {
		return nil, err
	}
	if b.FinishedAt, err = decNullTime(finished); err != nil {
		return nil, err
	}
	return &b, nil
}

// CreateBuild implements ledger.Store.
func (s *Store) CreateBuild(ctx context.Context, b *ferry.Build) error {
	if err := ledger.PrepareCreate(b); err != nil {
		return err
	}
	err := s.w.QueryRowContext(ctx, `
		INSERT INTO builds (app, commit_sha, branch, subject, author, triggered_by,
		                    state, reason, image, digest, created_at, started_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		b.App, b.Commit, b.Branch, b.Subject, b.Author, b.Trigger,
		b.State, b.Reason, b.Image, b.Digest,
		encTime(b.CreatedAt), nullTime(b.StartedAt), nullTime(b.FinishedAt),
	).Scan(&b.ID)
	if isUnique(err) {
		return ledger.DuplicateBuild(b.App, b.Commit)
	}
	if err != nil {
		return fmt.Errorf("create build of %s %s: %w", b.App, ferry.ShortSHA(b.Commit), err)
	}
	return nil
}

// Build implements ledger.Store.
func (s *Store) Build(ctx context.Context, id int64) (*ferry.Build, error) {
	b, err := s.buildWithSteps(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.BuildNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get build %d: %w", id, err)
	}
	return b, nil
}

// BuildByCommit implements ledger.Store.
func (s *Store) BuildByCommit(ctx context.Context, app, commit string) (*ferry.Build, error) {
	if err := ledger.CheckCommit(app, commit); err != nil {
		return nil, err
	}
	b, err := s.buildWithSteps(ctx, `SELECT `+buildColumns+` FROM builds WHERE app = ? AND commit_sha = ?`, app, commit)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ledger.CommitNotFound(app, commit)
	}
	if err != nil {
		return nil, fmt.Errorf("get build of %s %s: %w", app, ferry.ShortSHA(commit), err)
	}
	return b, nil
}

// buildWithSteps reads one build and its steps from one snapshot.
func (s *Store) buildWithSteps(ctx context.Context, query string, args ...any) (*ferry.Build, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	b, err := scanBuild(tx.QueryRowContext(ctx, query, args...))
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT build_id, seq, name, state, attempts, error, started_at, finished_at
		FROM build_steps WHERE build_id = ? ORDER BY seq, name`, b.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	b.Steps = []ferry.Step{}
	for rows.Next() {
		var (
			st                ferry.Step
			started, finished sql.NullString
		)
		if err := rows.Scan(&st.BuildID, &st.Seq, &st.Name, &st.State, &st.Attempts, &st.Error, &started, &finished); err != nil {
			return nil, err
		}
		if st.StartedAt, err = decNullTime(started); err != nil {
			return nil, err
		}
		if st.FinishedAt, err = decNullTime(finished); err != nil {
			return nil, err
		}
		b.Steps = append(b.Steps, st)
	}
	return b, rows.Err()
}

// Builds implements ledger.Store.
func (s *Store) Builds(ctx context.Context, f ledger.BuildFilter) ([]*ferry.Build, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	if f.App != "" {
		where, args = append(where, "app = ?"), append(args, f.App)
	}
	if f.Branch != "" {
		where, args = append(where, "branch = ?"), append(args, f.Branch)
	}
	states := make([]any, len(f.States))
	for i, st := range f.States {
		states[i] = st
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	query, args := newest(buildColumns, "builds", where, args, "state", states, f.PageSize())
	return queryList(ctx, s.r, "list builds", scanBuild, query, args...)
}

// UpdateBuild implements ledger.Store.
func (s *Store) UpdateBuild(ctx context.Context, b *ferry.Build) error {
	if err := ledger.PrepareUpdate(b); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `
		UPDATE builds
		SET state = ?, reason = ?, image = ?, digest = ?, started_at = ?, finished_at = ?,
		    subject = ?, author = ?
		WHERE id = ?`,
		b.State, b.Reason, b.Image, b.Digest, nullTime(b.StartedAt), nullTime(b.FinishedAt),
		b.Subject, b.Author, b.ID)
	if err != nil {
		return fmt.Errorf("update build %d: %w", b.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update build %d: %w", b.ID, err)
	} else if n == 0 {
		return ledger.BuildNotFound(b.ID)
	}
	return nil
}

// TransitionBuild implements ledger.Store. The write transaction holds the
// database's write lock from its start, so the read and the update cannot
// interleave with another transition.
func (s *Store) TransitionBuild(ctx context.Context, id int64, from, to ferry.BuildState, reason string, at time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("transition build %d: %w", id, err)
	}
	defer tx.Rollback()
	b, err := scanBuild(tx.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.BuildNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("transition build %d: %w", id, err)
	}
	if err := ledger.Transition(b, from, to, reason, at); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE builds SET state = ?, reason = ?, started_at = ?, finished_at = ? WHERE id = ?`,
		b.State, b.Reason, nullTime(b.StartedAt), nullTime(b.FinishedAt), id); err != nil {
		return fmt.Errorf("transition build %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("transition build %d: %w", id, err)
	}
	return nil
}

// SaveStep implements ledger.Store.
func (s *Store) SaveStep(ctx context.Context, st ferry.Step) error {
	if err := ledger.PrepareStep(&st); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `
		INSERT INTO build_steps (build_id, name, seq, state, attempts, error, started_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (build_id, name) DO UPDATE
		SET seq = excluded.seq, state = excluded.state, attempts = excluded.attempts,
		    error = excluded.error, started_at = excluded.started_at, finished_at = excluded.finished_at`,
		st.BuildID, st.Name, st.Seq, st.State, st.Attempts, st.Error,
		nullTime(st.StartedAt), nullTime(st.FinishedAt))
	if isForeignKey(err) {
		return ledger.BuildNotFound(st.BuildID)
	}
	if err != nil {
		return fmt.Errorf("save step %s of build %d: %w", st.Name, st.BuildID, err)
	}
	return nil
}

// AppendLog implements ledger.Store. The build row's log_seq counter hands
// out the numbers inside the same transaction as the inserts, so a failed
// append leaves no gap.
func (s *Store) AppendLog(ctx context.Context, buildID int64, lines []ferry.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	if err := ledger.PrepareLines(buildID, lines); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append log of build %d: %w", buildID, err)
	}
	defer tx.Rollback()
	var last int64
	err = tx.QueryRowContext(ctx, `UPDATE builds SET log_seq = log_seq + ? WHERE id = ? RETURNING log_seq`,
		len(lines), buildID).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.BuildNotFound(buildID)
	}
	if err != nil {
		return fmt.Errorf("append log of build %d: %w", buildID, err)
	}
	first := last - int64(len(lines)) + 1
	stmt, err := tx.PrepareContext(ctx, `
		INSERT INTO build_logs (build_id, seq, step, logged_at, line) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append log of build %d: %w", buildID, err)
	}
	defer stmt.Close()
	for i, l := range lines {
		if _, err := stmt.ExecContext(ctx, buildID, first+int64(i), l.Step, encTime(l.Time), l.Text); err != nil {
			return fmt.Errorf("append log of build %d: %w", buildID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append log of build %d: %w", buildID, err)
	}
	for i := range lines {
		lines[i].Seq = first + int64(i)
	}
	return nil
}

// Logs implements ledger.Store.
func (s *Store) Logs(ctx context.Context, buildID int64, afterSeq int64, limit int) ([]ferry.LogLine, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT build_id, seq, step, logged_at, line
		FROM build_logs WHERE build_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		buildID, afterSeq, ledger.LogPageSize(limit))
	if err != nil {
		return nil, fmt.Errorf("logs of build %d: %w", buildID, err)
	}
	defer rows.Close()
	lines := []ferry.LogLine{}
	for rows.Next() {
		var (
			l  ferry.LogLine
			at string
		)
		if err := rows.Scan(&l.BuildID, &l.Seq, &l.Step, &at, &l.Text); err != nil {
			return nil, fmt.Errorf("logs of build %d: %w", buildID, err)
		}
		if l.Time, err = decTime(at); err != nil {
			return nil, fmt.Errorf("logs of build %d: %w", buildID, err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logs of build %d: %w", buildID, err)
	}
	if len(lines) == 0 {
		// Nothing new, or no such build: only the second is an error.
		var one int
		err := s.r.QueryRowContext(ctx, `SELECT 1 FROM builds WHERE id = ?`, buildID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ledger.BuildNotFound(buildID)
		}
		if err != nil {
			return nil, fmt.Errorf("logs of build %d: %w", buildID, err)
		}
	}
	return lines, nil
}
