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

const notificationColumns = `id, app, receiver, event_id, topic, env, body, state, attempts, last_error, next_at, created_at, delivered_at`

func scanNotification(row pgx.Row) (*ferry.Notification, error) {
	var (
		n               ferry.Notification
		next, delivered *time.Time
	)
	if err := row.Scan(&n.ID, &n.App, &n.Receiver, &n.EventID, &n.Topic, &n.Env, &n.Body, &n.State, &n.Attempts, &n.LastError,
		&next, &n.CreatedAt, &delivered); err != nil {
		return nil, err
	}
	n.CreatedAt, n.NextAt, n.DeliveredAt = n.CreatedAt.UTC(), decNullTime(next), decNullTime(delivered)
	return &n, nil
}

// NotificationCursor implements ledger.NotificationStore.
func (s *Store) NotificationCursor(ctx context.Context, app string) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT event_id FROM notification_cursors WHERE app = $1`, app).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the notification cursor of %s: %w", app, err)
	}
	return id, nil
}

// EnqueueNotifications implements ledger.NotificationStore. The cursor's
// row lock (or the insert that creates it) serialises writers.
func (s *Store) EnqueueNotifications(ctx context.Context, app string, from, upTo int64, ns []*ferry.Notification) error {
	for _, n := range ns {
		if err := ledger.PrepareNotification(app, n); err != nil {
			return err
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var cur int64
		err := tx.QueryRow(ctx, `SELECT event_id FROM notification_cursors WHERE app = $1 FOR UPDATE`, app).Scan(&cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if cur != from {
			return ferry.Errorf(ferry.ECONFLICT, "the notification cursor of %s is at event %d, not %d", app, cur, from)
		}
		for _, n := range ns {
			err := tx.QueryRow(ctx, `
				INSERT INTO notifications (app, receiver, event_id, topic, env, body, state, next_at, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (app, receiver, event_id) DO NOTHING RETURNING id`,
				app, n.Receiver, n.EventID, n.Topic, n.Env, n.Body, string(n.State), n.NextAt, n.CreatedAt).Scan(&n.ID)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO notification_cursors (app, event_id) VALUES ($1, $2)
			ON CONFLICT (app) DO UPDATE SET event_id = excluded.event_id WHERE notification_cursors.event_id = $3`, app, upTo, from)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return ferry.Errorf(ferry.ECONFLICT, "the notification cursor of %s moved meanwhile", app)
		}
		return nil
	})
	if _, ok := errors.AsType[*ferry.Error](err); ok {
		return err
	}
	if isUnique(err) {
		return ferry.Errorf(ferry.ECONFLICT, "the notification cursor of %s moved meanwhile", app)
	}
	if err != nil {
		return fmt.Errorf("record notifications: %w", err)
	}
	return nil
}

// DueNotifications implements ledger.NotificationStore.
func (s *Store) DueNotifications(ctx context.Context, app string, now time.Time, limit int) ([]*ferry.Notification, error) {
	return queryList(ctx, s.pool, "list due notifications", scanNotification,
		`SELECT `+notificationColumns+` FROM notifications WHERE app = $1 AND state = $2 AND next_at <= $3 ORDER BY next_at, id LIMIT $4`,
		app, string(ferry.NotificationPending), now.UTC(), ledger.NotificationFilter{Limit: limit}.PageSize())
}

// RecordAttempt implements ledger.NotificationStore.
func (s *Store) RecordAttempt(ctx context.Context, id int64, to ferry.NotificationState, errMsg string, next, at time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		n, err := scanNotification(tx.QueryRow(ctx, `SELECT `+notificationColumns+` FROM notifications WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ledger.NotificationNotFound(id)
		}
		if err != nil {
			return err
		}
		if err := ledger.AttemptOf(n, to, errMsg, next, at); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE notifications SET state = $1, attempts = $2, last_error = $3, next_at = $4, delivered_at = $5 WHERE id = $6`,
			string(n.State), n.Attempts, n.LastError, nullTime(n.NextAt), nullTime(n.DeliveredAt), id)
		return err
	})
	if _, ok := errors.AsType[*ferry.Error](err); ok {
		return err
	}
	if err != nil {
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
	return queryList(ctx, s.pool, "list notifications", scanNotification, query, args...)
}
