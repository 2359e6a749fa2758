package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// AddEvent implements ledger.Store.
func (s *Store) AddEvent(ctx context.Context, e *ferry.Event) error {
	if err := ledger.PrepareEvent(e); err != nil {
		return err
	}
	err := s.pool.QueryRow(ctx, `
		WITH kind AS (INSERT INTO event_kinds (kind) VALUES ($3) ON CONFLICT (kind) DO NOTHING)
		INSERT INTO events (at, actor, kind, app, env, commit_sha, build_id, message, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		RETURNING id`,
		e.Time.UTC(), e.Actor, e.Kind, e.App, e.Env, e.Commit, nullID(e.BuildID), e.Message, e.Reason,
	).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("add event %s: %w", e.Kind, err)
	}
	return nil
}

// Events implements ledger.Store. A kind prefix is the kinds it selects
// (event_kinds), each read through an index of its own.
func (s *Store) Events(ctx context.Context, f ledger.EventFilter) ([]ferry.Event, error) {
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
	if f.Env != "" {
		where = append(where, "env = "+args.add(f.Env))
	}
	if f.BuildID != 0 {
		where = append(where, "build_id = "+args.add(f.BuildID))
	}
	if f.BeforeID > 0 {
		where = append(where, "id < "+args.add(f.BeforeID))
	}
	var kinds []string
	if f.Kind != "" {
		// A literal prefix: LIKE would treat _ and % as wildcards.
		rows, err := s.pool.Query(ctx, `SELECT kind FROM event_kinds WHERE starts_with(kind, $1) ORDER BY kind`, f.Kind)
		if err == nil {
			kinds, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		if len(kinds) == 0 {
			return []ferry.Event{}, nil
		}
	}
	query := newest(`id, at, actor, kind, app, env, commit_sha, build_id, message, reason`, "events", where, &args, "kind", kinds, f.PageSize())

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	events := []ferry.Event{}
	var (
		e       ferry.Event
		buildID *int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&e.ID, &e.Time, &e.Actor, &e.Kind, &e.App, &e.Env, &e.Commit, &buildID, &e.Message, &e.Reason}, func() error {
		e.Time = e.Time.UTC()
		e.BuildID = 0
		if buildID != nil {
			e.BuildID = *buildID
		}
		events = append(events, e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return events, nil
}
