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

const notificationColumns = `id, app, receiver, event_id, topic, env, body, state, attempts, last_error, next_at, created_at, delivered_at`

func scanNotification(row scanner) (*ferry.Notification, error) {
	var (
		n               ferry.Notification
		created         string
		next, delivered sql.NullString
	)
	if err := row.Scan(&n.ID, &n.App, &n.Receiver, &n.EventID, &n.Topic, &n.Env, &n.Body, &n.State, &n.Attempts, &n.LastError,
		&next, &created, &delivered); err != nil {
		return nil, err
	}
	var err error
	if n.CreatedAt, err = decTime(created); err != nil {
		return nil, err
	}
	if n.NextAt, err = decNullTime(next); err != nil {
		return nil, err
	}
	if n.DeliveredAt, err = decNullTime(delivered); err != nil {
		return nil, err
	}
	return &n, nil
}

// NotificationCursor implements ledger.NotificationStore.
func (s *Store) NotificationCursor(ctx context.Context, app string) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT event_id FROM notification_cursors WHERE app = ?`, app).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the notification cursor of %s: %w", app, err)
	}
	return id, nil
}

// EnqueueNotifications implements ledger.NotificationStore.
func (s *Store) EnqueueNotifications(ctx context.Context, app string, from, upTo int64, ns []*ferry.Notification) error {
	for _, n := range ns {
		if err := ledger.PrepareNotification(app, n); err != nil {
			return err
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record notifications: %w", err)
	}
	defer tx.Rollback()
	var cur int64
	if err := tx.QueryRowContext(ctx, `SELECT event_id FROM notification_cursors WHERE app = ?`, app).Scan(&cur); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("record notifications: %w", err)
	}
	if cur != from {
		return ferry.Errorf(ferry.ECONFLICT, "the notification cursor of %s is at event %d, not %d", app, cur, from)
	}
	for _, n := range ns {
		err := tx.QueryRowContext(ctx, `
			INSERT INTO notifications (app, receiver, event_id, topic, env, body, state, next_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app, receiver, event_id) DO NOTHING RETURNING id`,
			app, n.Receiver, n.EventID, n.Topic, n.Env, n.Body, string(n.State), encTime(n.NextAt), encTime(n.CreatedAt)).Scan(&n.ID)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("record notification of event %d to %s: %w", n.EventID, n.Receiver, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO notification_cursors (app, event_id) VALUES (?, ?)
		ON CONFLICT (app) DO UPDATE SET event_id = excluded.event_id`, app, upTo); err != nil {
		return fmt.Errorf("move the notification cursor: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record notifications: %w", err)
	}
	return nil
}

// DueNotifications implements ledger.NotificationStore.
func (s *Store) DueNotifications(ctx context.Context, app string, now time.Time, limit int) ([]*ferry.Notification, error) {
	return queryList(ctx, s.r, "list due notifications", scanNotification,
		`SELECT `+notificationColumns+` FROM notifications WHERE app = ? AND state = ? AND next_at <= ? ORDER BY next_at, id LIMIT ?`,
		app, string(ferry.NotificationPending), encTime(now), ledger.NotificationFilter{Limit: limit}.PageSize())
}

// RecordAttempt implements ledger.NotificationStore.
func (s *Store) RecordAttempt(ctx context.Context, id int64, to ferry.NotificationState, errMsg string, next, at time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record an attempt of notification %d: %w", id, err)
	}
	defer tx.Rollback()
	n, err := scanNotification(tx.QueryRowContext(ctx, `SELECT `+notificationColumns+` FROM notifications WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.NotificationNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("record an attempt of notification %d: %w", id, err)
	}
	if err := ledger.AttemptOf(n, to, errMsg, next, at); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE notifications SET state = ?, attempts = ?, last_error = ?, next_at = ?, delivered_at = ? WHERE id = ?`,
		string(n.State), n.Attempts, n.LastError, nullTime(n.NextAt), nullTime(n.DeliveredAt), id); err != nil {
		return fmt.Errorf("record an attempt of notification %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record an attempt of notification %d: %w", id, err)
	}
	return nil
}

// Notifications implements ledger.NotificationStore.
func (s *Store) Notifications(ctx context.Context, f ledger.NotificationFilter) ([]*ferry.Notification, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	query, args := page{
		eq:     [][2]string{{"app", f.App}, {"receiver", f.Receiver}},
		states: ledger.Strings(f.States), beforeID: f.BeforeID, limit: f.PageSize(),
	}.query(notificationColumns, "notifications")
	return queryList(ctx, s.r, "list notifications", scanNotification, query, args...)
}
