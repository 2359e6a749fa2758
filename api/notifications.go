package api

import (
	"context"
	"net/http"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// Outbox reads the outbox of outgoing notifications.
type Outbox interface {
	Notifications(ctx context.Context, f ledger.NotificationFilter) ([]*ferry.Notification, error)
}

// NotificationList is the body of GET /api/v1/notifications.
type NotificationList struct {
	Notifications []*ferry.Notification `json:"notifications"`
}

func (s *Server) listNotifications(w http.ResponseWriter, r *http.Request) {
	limit, before, err := page(r, 50)
	if err != nil {
		s.error(w, r, err)
		return
	}
	f := ledger.NotificationFilter{App: s.App, Receiver: r.URL.Query().Get("receiver"), BeforeID: before, Limit: int(limit)}
	if f.States, err = queryEnum(r, "state", "notification state", ferry.NotificationStates()); err != nil {
		s.error(w, r, err)
		return
	}
	ns, err := s.Notifications.Notifications(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, NotificationList{Notifications: ns})
}
