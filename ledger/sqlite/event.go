package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// AddEvent implements ledger.Store.
func (s *Store) AddEvent(ctx context.Context, e *ferry.Event) error {
	if err := ledger.PrepareEvent(e); err != nil {
		return err
	}
	if _, known := s.kindsSeen.Load(e.Kind); !known {
		if _, err := s.w.ExecContext(ctx, `INSERT INTO event_kinds (kind) VALUES (?) ON CONFLICT (kind) DO NOTHING`, e.Kind); err != nil {
			return fmt.Errorf("add event %s: %w", e.Kind, err)
		}
		s.kindsSeen.Store(e.Kind, true)
	}
	err := s.w.QueryRowContext(ctx, `
		INSERT INTO events (at, actor, kind, app, env, commit_sha, build_id, message, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		encTime(e.Time), e.Actor, e.Kind, e.App, e.Env, e.Commit, nullID(e.BuildID), e.Message, e.Reason,
	).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("add event %s: %w", e.Kind, err)
	}
	return nil
}

// kinds returns the event kinds recorded that start with prefix,
// literally (LIKE would treat _ and % as wildcards and ignore case).
func (s *Store) kinds(ctx context.Context, prefix string) ([]any, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kind FROM event_kinds WHERE substr(kind, 1, length(?)) = ? ORDER BY kind`, prefix, prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var kinds []any
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		kinds = append(kinds, k)
	}
	return kinds, rows.Err()
}

// Events implements ledger.Store. A kind prefix is the kinds it selects
// (event_kinds), each read through an index of its own.
func (s *Store) Events(ctx context.Context, f ledger.EventFilter) ([]ferry.Event, error) {
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
	if f.Env != "" {
		where, args = append(where, "env = ?"), append(args, f.Env)
	}
	if f.BuildID != 0 {
		where, args = append(where, "build_id = ?"), append(args, f.BuildID)
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	var kinds []any
	if f.Kind != "" {
		var err error
		if kinds, err = s.kinds(ctx, f.Kind); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		if len(kinds) == 0 {
			return []ferry.Event{}, nil
		}
	}
	query, args := newest(`id, at, actor, kind, app, env, commit_sha, build_id, message, reason`, "events", where, args, "kind", kinds, f.PageSize())

	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	events := []ferry.Event{}
	for rows.Next() {
		var (
			e       ferry.Event
			at      string
			buildID sql.NullInt64
		)
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Kind, &e.App, &e.Env, &e.Commit, &buildID, &e.Message, &e.Reason); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		if e.Time, err = decTime(at); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		e.BuildID = buildID.Int64
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return events, nil
}
