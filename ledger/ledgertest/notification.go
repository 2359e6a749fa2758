package ledgertest

import (
	"reflect"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// testNotifications: the outbox records notifications with its cursor by
// compare-and-set, skips one recorded already, lists the due ones oldest
// first, records attempts (retry, delivered, failed; never after the
// last), and lists newest first by receiver and state.
func testNotifications(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	if cur, err := s.NotificationCursor(ctx, "app"); err != nil || cur != 0 {
		t.Fatalf("NotificationCursor(fresh) = %d, %v; want 0", cur, err)
	}
	n1 := &ferry.Notification{Receiver: "slack", EventID: 3, Topic: "released", Env: "prod", Body: `{"text":"RC1"}`, CreatedAt: t0}
	n2 := &ferry.Notification{Receiver: "audit", EventID: 3, Topic: "released", Env: "prod", Body: `{}`, CreatedAt: t0, NextAt: at(time.Hour)}
	if err := s.EnqueueNotifications(ctx, "app", 0, 5, []*ferry.Notification{n1, n2}); err != nil {
		t.Fatal(err)
	}
	if n1.ID == 0 || n2.ID == 0 || n1.State != ferry.NotificationPending {
		t.Fatalf("enqueued = %+v, %+v; want ids, pending", n1, n2)
	}
	if err := s.EnqueueNotifications(ctx, "app", 0, 9, nil); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("EnqueueNotifications(stale cursor) = %v, want ECONFLICT", err)
	}
	dup := &ferry.Notification{Receiver: "slack", EventID: 3, Topic: "released", CreatedAt: t0}
	if err := s.EnqueueNotifications(ctx, "app", 5, 7, []*ferry.Notification{dup}); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s.NotificationCursor(ctx, "app"); cur != 7 {
		t.Errorf("cursor = %d, want 7", cur)
	}
	if err := s.EnqueueNotifications(ctx, "app", 7, 8, []*ferry.Notification{{Receiver: "x", Topic: "t", CreatedAt: t0}}); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("EnqueueNotifications(no event) = %v, want EINVALID", err)
	}

	due, err := s.DueNotifications(ctx, "app", at(time.Minute), 10)
	if err != nil || len(due) != 1 || due[0].ID != n1.ID {
		t.Fatalf("DueNotifications(+1m) = %+v, %v; want only slack's", due, err)
	}
	want := *n1
	want.CreatedAt, want.NextAt, want.App = t0.UTC(), t0.UTC(), "app"
	if !reflect.DeepEqual(*due[0], want) {
		t.Errorf("due =\n%+v\nwant\n%+v", *due[0], want)
	}
	if err := s.RecordAttempt(ctx, n1.ID, ferry.NotificationPending, "503 Service Unavailable", at(2*time.Minute), at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DueNotifications(ctx, "app", at(time.Minute), 10); len(due) != 0 {
		t.Errorf("due after a retry was scheduled = %d, want 0", len(due))
	}
	if err := s.RecordAttempt(ctx, n1.ID, ferry.NotificationDelivered, "", time.Time{}, at(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, n1.ID, ferry.NotificationPending, "again", at(3*time.Minute), at(3*time.Minute)); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("RecordAttempt(delivered) = %v, want ECONFLICT", err)
	}
	if err := s.RecordAttempt(ctx, n2.ID, ferry.NotificationPending, "x", time.Time{}, at(time.Minute)); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("RecordAttempt(retry without a time) = %v, want EINVALID", err)
	}
	if err := s.RecordAttempt(ctx, n2.ID, ferry.NotificationFailed, "connection refused", time.Time{}, at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, 999, ferry.NotificationFailed, "", time.Time{}, t0); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("RecordAttempt(999) = %v, want ENOTFOUND", err)
	}
	list, err := s.Notifications(ctx, ledger.NotificationFilter{App: "app"})
	if err != nil || len(list) != 2 || list[0].ID != n2.ID {
		t.Fatalf("Notifications = %+v, %v", list, err)
	}
	if d := list[1]; d.State != ferry.NotificationDelivered || d.Attempts != 2 || d.LastError != "" || !d.DeliveredAt.Equal(at(2*time.Minute)) || !d.NextAt.IsZero() {
		t.Errorf("delivered = %+v", d)
	}
	if f := list[0]; f.State != ferry.NotificationFailed || f.Attempts != 1 || f.LastError != "connection refused" {
		t.Errorf("failed = %+v", f)
	}
	for _, tt := range []struct {
		f    ledger.NotificationFilter
		want int
	}{
		{ledger.NotificationFilter{App: "app", Receiver: "slack"}, 1},
		{ledger.NotificationFilter{App: "app", States: []ferry.NotificationState{ferry.NotificationFailed}}, 1},
		{ledger.NotificationFilter{App: "app", BeforeID: n2.ID}, 1},
		{ledger.NotificationFilter{App: "other"}, 0},
	} {
		if got, err := s.Notifications(ctx, tt.f); err != nil || len(got) != tt.want {
			t.Errorf("Notifications(%+v) = %d, %v; want %d", tt.f, len(got), err, tt.want)
		}
	}
}
