package ledger

import (
	"context"
	"time"

	"github.com/ferryhq/ferry"
)

// NotificationStore is the outbox of outgoing notifications: each is
// recorded before any attempt, together with the cursor of audit events
// read, so that a crash between an event and its delivery loses nothing
// and repeats nothing; every attempt is recorded on its row.
type NotificationStore interface {
	// NotificationCursor is the id of the newest audit event of app whose
	// notifications are recorded (0: none yet).
	NotificationCursor(ctx context.Context, app string) (int64, error)
	// EnqueueNotifications records ns (pending, due at once unless NextAt
	// is set; CreatedAt is required) and moves app's cursor to upTo, in one transaction; a
	// notification of a (receiver, event) already recorded is skipped.
	// ECONFLICT when the cursor is no longer from (another writer moved
	// it): nothing is recorded then.
	EnqueueNotifications(ctx context.Context, app string, from, upTo int64, ns []*ferry.Notification) error
	// DueNotifications lists app's pending notifications due at now,
	// oldest first, at most limit.
	DueNotifications(ctx context.Context, app string, now time.Time, limit int) ([]*ferry.Notification, error)
	// RecordAttempt records one attempt of pending notification id: its
	// new state (pending with its next time, delivered or failed), its
	// error (empty when delivered), at at.
	RecordAttempt(ctx context.Context, id int64, to ferry.NotificationState, errMsg string, next, at time.Time) error
	// Notifications lists notifications newest first.
	Notifications(ctx context.Context, f NotificationFilter) ([]*ferry.Notification, error)
}

// NotificationFilter selects notifications. Zero fields select
// everything.
type NotificationFilter struct {
	App      string
	Receiver string
	States   []ferry.NotificationState
	BeforeID int64
	// Limit bounds the result: ≤ 0 means DefaultLimit, at most MaxLimit.
	Limit int
}

// PageSize is the number of notifications f asks for.
func (f NotificationFilter) PageSize() int { return pageSize(f.Limit, DefaultLimit, MaxLimit) }

// Check refuses a filter whose keys no notification could have.
func (f NotificationFilter) Check() error {
	if err := CheckKeys(Key{"app", f.App, MaxName}, Key{"receiver", f.Receiver, MaxName}); err != nil {
		return err
	}
	for _, st := range f.States {
		if err := CheckKey("notification state", string(st), MaxName); err != nil {
			return err
		}
	}
	return nil
}

// PrepareNotification checks a notification about to be recorded for app
// and makes it storable; it is due at once unless NextAt is set.
func PrepareNotification(app string, n *ferry.Notification) error {
	n.App, n.State, n.Attempts, n.LastError, n.DeliveredAt = app, ferry.NotificationPending, 0, "", time.Time{}
	switch {
	case n.Receiver == "" || n.Topic == "":
		return ferry.Errorf(ferry.EINVALID, "a notification needs a receiver and a topic")
	case n.EventID <= 0:
		return ferry.Errorf(ferry.EINVALID, "a notification of %s needs its event", n.Receiver)
	case n.CreatedAt.IsZero():
		return ferry.Errorf(ferry.EINVALID, "a notification needs its creation time")
	}
	if err := CheckKeys(Key{"app", app, MaxName}, Key{"receiver", n.Receiver, MaxName}, Key{"topic", n.Topic, MaxName}, Key{"environment", n.Env, MaxName}); err != nil {
		return err
	}
	n.Body = StoreText(n.Body, MaxText)
	if n.NextAt.IsZero() {
		n.NextAt = n.CreatedAt
	}
	n.CreatedAt, n.NextAt = n.CreatedAt.UTC(), n.NextAt.UTC()
	return nil
}

// AttemptOf applies one attempt to n as RecordAttempt documents; n is
// unchanged when it is refused.
func AttemptOf(n *ferry.Notification, to ferry.NotificationState, errMsg string, next, at time.Time) error {
	switch {
	case n.State != ferry.NotificationPending:
		return ferry.Errorf(ferry.ECONFLICT, "notification %d is %s, not pending", n.ID, n.State)
	case at.IsZero():
		return ferry.Errorf(ferry.EINVALID, "an attempt of notification %d needs its time", n.ID)
	case to == ferry.NotificationPending && next.IsZero():
		return ferry.Errorf(ferry.EINVALID, "a retry of notification %d needs its next time", n.ID)
	case to != ferry.NotificationPending && to != ferry.NotificationDelivered && to != ferry.NotificationFailed:
		return ferry.Errorf(ferry.EINVALID, "unknown notification state %q", to)
	}
	n.State, n.Attempts, n.LastError = to, n.Attempts+1, StoreText(errMsg, MaxText)
	n.NextAt = time.Time{}
	if to == ferry.NotificationPending {
		n.NextAt = next.UTC()
	}
	if to == ferry.NotificationDelivered {
		n.DeliveredAt = at.UTC()
	}
	return nil
}

// NotificationNotFound is the error for a missing notification.
func NotificationNotFound(id int64) error {
	return ferry.Errorf(ferry.ENOTFOUND, "notification %d not found", id)
}
