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

const buildColumns = `id, app, commit_sha, branch, subject, author, triggered_by,
	state, reason, image, digest, created_at, started_at, finished_at`

func scanBuild(row pgx.Row) (*ferry.Build, error) {
	var (
		b                 ferry.Build
		started, finished *time.Time
	)
	if err := row.Scan(&b.ID, &b.App, &b.Commit, &b.Branch, &b.Subject, &b.Author, &b.Trigger,
		&b.State, &b.Reason, &b.Image, &b.Digest, &b.CreatedAt, &started, &finished); err != nil {
		return nil, err
	}
	b.CreatedAt = b.CreatedAt.UTC()
	b.StartedAt, b.FinishedAt = decNullTime(started), decNullTime(finished)
	return &b, nil
}

// CreateBuild implements ledger.Store.
func (s *Store) CreateBuild(ctx context.Context, b *ferry.Build) error {
	if err := ledger.PrepareCreate(b); err != nil {
		return err
	}
	err := s.pool.QueryRow(ctx, `
		INSERT INTO builds (app, commit_sha, branch, subject, author, triggered_by,
		                    state, reason, image, digest, created_at, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		RETURNING id`,
		b.App, b.Commit, b.Branch, b.Subject, b.Author, b.Trigger,
		string(b.State), b.Reason, b.Image, b.Digest,
		b.CreatedAt.UTC(), nullTime(b.StartedAt), nullTime(b.FinishedAt),
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
	b, err := s.buildWithSteps(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1`, id)
	if errors.Is(err, pgx.ErrNoRows) {
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
	b, err := s.buildWithSteps(ctx, `SELECT `+buildColumns+` FROM builds WHERE app = $1 AND commit_sha = $2`, app, commit)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ledger.CommitNotFound(app, commit)
	}
	if err != nil {
		return nil, fmt.Errorf("get build of %s %s: %w", app, ferry.ShortSHA(commit), err)
	}
	return b, nil
}

// buildWithSteps reads one build and its steps from one snapshot.
func (s *Store) buildWithSteps(ctx context.Context, query string, args ...any) (*ferry.Build, error) {
	var b *ferry.Build
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if b, err = scanBuild(tx.QueryRow(ctx, query, args...)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT build_id, seq, name, state, attempts, error, started_at, finished_at
			FROM build_steps WHERE build_id = $1 ORDER BY seq, name`, b.ID)
		if err != nil {
			return err
		}
		var (
			st                ferry.Step
			started, finished *time.Time
		)
		b.Steps = []ferry.Step{}
		_, err = pgx.ForEachRow(rows, []any{&st.BuildID, &st.Seq, &st.Name, &st.State, &st.Attempts, &st.Error, &started, &finished}, func() error {
			st.StartedAt, st.FinishedAt = decNullTime(started), decNullTime(finished)
			b.Steps = append(b.Steps, st)
			return nil
		})
		return err
	})
	return b, err
}

// Builds implements ledger.Store.
func (s *Store) Builds(ctx context.Context, f ledger.BuildFilter) ([]*ferry.Build, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	var (
		where []string
		args  params
	)
	if f.App != "" {
		where = append(where, "app = "+args.add(f.App))
	}
	if f.Branch != "" {
		where = append(where, "branch = "+args.add(f.Branch))
	}
	states := make([]string, len(f.States))
	for i, st := range f.States {
		states[i] = string(st)
	}
	if f.BeforeID > 0 {
		where = append(where, "id < "+args.add(f.BeforeID))
	}
	query := newest(buildColumns, "builds", where, &args, "state", states, f.PageSize())

	return queryList(ctx, s.pool, "list builds", scanBuild, query, args...)
}

// UpdateBuild implements ledger.Store.
func (s *Store) UpdateBuild(ctx context.Context, b *ferry.Build) error {
	if err := ledger.PrepareUpdate(b); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE builds
		SET state = $1, reason = $2, image = $3, digest = $4, started_at = $5, finished_at = $6,
		    subject = $7, author = $8
		WHERE id = $9`,
		string(b.State), b.Reason, b.Image, b.Digest, nullTime(b.StartedAt), nullTime(b.FinishedAt),
		b.Subject, b.Author, b.ID)
	if err != nil {
		return fmt.Errorf("update build %d: %w", b.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return ledger.BuildNotFound(b.ID)
	}
	return nil
}

// TransitionBuild implements ledger.Store. SELECT … FOR UPDATE locks the
// row: a concurrent transition waits, then reads the state this one wrote.
func (s *Store) TransitionBuild(ctx context.Context, id int64, from, to ferry.BuildState, reason string, at time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b, err := scanBuild(tx.QueryRow(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ledger.BuildNotFound(id)
		}
		if err != nil {
			return err
		}
		if err := ledger.Transition(b, from, to, reason, at); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE builds SET state = $1, reason = $2, started_at = $3, finished_at = $4 WHERE id = $5`,
			string(b.State), b.Reason, nullTime(b.StartedAt), nullTime(b.FinishedAt), id)
		return err
	})
	if _, ok := errors.AsType[*ferry.Error](err); ok {
		return err
	}
	if err != nil {
		return fmt.Errorf("transition build %d: %w", id, err)
	}
	return nil
}

// SaveStep implements ledger.Store.
func (s *Store) SaveStep(ctx context.Context, st ferry.Step) error {
	if err := ledger.PrepareStep(&st); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO build_steps (build_id, name, seq, state, attempts, error, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (build_id, name) DO UPDATE
		SET seq = excluded.seq, state = excluded.state, attempts = excluded.attempts,
		    error = excluded.error, started_at = excluded.started_at, finished_at = excluded.finished_at`,
		st.BuildID, st.Name, st.Seq, string(st.State), st.Attempts, st.Error,
		nullTime(st.StartedAt), nullTime(st.FinishedAt))
	if isForeignKey(err) {
		return ledger.BuildNotFound(st.BuildID)
	}
	if err != nil {
		return fmt.Errorf("save step %s of build %d: %w", st.Name, st.BuildID, err)
	}
	return nil
}

// AppendLog implements ledger.Store. One statement moves the build's log_seq
// counter on by the number of lines and inserts them numbered from the old
// value: the counter's row lock queues concurrent appends, and a failed
// statement moves nothing, so numbers stay gapless.
func (s *Store) AppendLog(ctx context.Context, buildID int64, lines []ferry.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	if err := ledger.PrepareLines(buildID, lines); err != nil {
		return err
	}
	steps := make([]string, len(lines))
	times := make([]time.Time, len(lines))
	texts := make([]string, len(lines))
	for i, l := range lines {
		steps[i], times[i], texts[i] = l.Step, l.Time.UTC(), l.Text
	}
	var first *int64
	err := s.pool.QueryRow(ctx, `
		WITH counter AS (
		    UPDATE builds SET log_seq = log_seq + $2 WHERE id = $1 RETURNING log_seq - $2 AS before
		), inserted AS (
		    INSERT INTO build_logs (build_id, seq, step, logged_at, line)
		    SELECT $1, counter.before + l.n, l.step, l.logged_at, l.line
		    FROM counter, unnest($3::text[], $4::timestamptz[], $5::text[]) WITH ORDINALITY AS l (step, logged_at, line, n)
		    RETURNING seq
		)
		SELECT min(seq) FROM inserted`,
		buildID, len(lines), steps, times, texts).Scan(&first)
	if err != nil {
		return fmt.Errorf("append log of build %d: %w", buildID, err)
	}
	if first == nil { // no counter row: no such build
		return ledger.BuildNotFound(buildID)
	}
	for i := range lines {
		lines[i].Seq = *first + int64(i)
	}
	return nil
}

// Logs implements ledger.Store.
func (s *Store) Logs(ctx context.Context, buildID int64, afterSeq int64, limit int) ([]ferry.LogLine, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT build_id, seq, step, logged_at, line
		FROM build_logs WHERE build_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		buildID, afterSeq, ledger.LogPageSize(limit))
	if err != nil {
		return nil, fmt.Errorf("logs of build %d: %w", buildID, err)
	}
	lines := []ferry.LogLine{}
	var l ferry.LogLine
	if _, err := pgx.ForEachRow(rows, []any{&l.BuildID, &l.Seq, &l.Step, &l.Time, &l.Text}, func() error {
		l.Time = l.Time.UTC()
		lines = append(lines, l)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("logs of build %d: %w", buildID, err)
	}
	if len(lines) == 0 {
		// Nothing new, or no such build: only the second is an error.
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM builds WHERE id = $1)`, buildID).Scan(&exists); err != nil {
			return nil, fmt.Errorf("logs of build %d: %w", buildID, err)
		}
		if !exists {
			return nil, ledger.BuildNotFound(buildID)
		}
	}
	return lines, nil
}
