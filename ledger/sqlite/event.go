package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// AddEvent implements ledger.Store.
func (s *Store) AddEvent(ctx context.Context, e *ferry.Event) error {
	if err := ledger.PrepareEvent(e); err != nil {
		return err
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

// Events implements ledger.Store.
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
	if f.Kind != "" {
		// A literal prefix: LIKE would treat _ and % as wildcards and
		// ignore case.
		where, args = append(where, "substr(kind, 1, length(?)) = ?"), append(args, f.Kind, f.Kind)
	}
	if f.BuildID != 0 {
		where, args = append(where, "build_id = ?"), append(args, f.BuildID)
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	query := `SELECT id, at, actor, kind, app, env, commit_sha, build_id, message, reason FROM events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.PageSize())

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
