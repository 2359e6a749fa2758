package postgres

import (
	"context"
	"fmt"
	"strings"

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

// Events implements ledger.Store.
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
	if f.Kind != "" {
		// A literal prefix: LIKE would treat _ and % as wildcards.
		where = append(where, "starts_with(kind, "+args.add(f.Kind)+")")
	}
	if f.BuildID != 0 {
		where = append(where, "build_id = "+args.add(f.BuildID))
	}
	if f.BeforeID > 0 {
		where = append(where, "id < "+args.add(f.BeforeID))
	}
	query := `SELECT id, at, actor, kind, app, env, commit_sha, build_id, message, reason FROM events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ` + args.add(f.PageSize())

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
