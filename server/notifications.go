package server

import (
	"fmt"

	"github.com/ferryhq/ferry/notification"
)

// notifier is the dispatcher of ferry.yaml's notifications (nil when
// there are none), each receiver's secret resolved.
func (s *Server) notifier() (*notification.Dispatcher, error) {
	if len(s.cfg.Notifications) == 0 {
		return nil, nil
	}
	var rs []notification.Receiver
	for _, r := range s.cfg.Notifications {
		secret, err := r.Secret.Resolve(s.opts.Getenv, s.opts.ReadFile)
		if err != nil {
			return nil, fmt.Errorf("notifications %s: %w", r.Name, err)
		}
		rs = append(rs, notification.Receiver{Name: r.Name, URL: r.URL, Format: r.Format, Secret: []byte(secret), Envs: r.Envs, Topics: r.Topics})
	}
	return &notification.Dispatcher{App: s.cfg.App, Ledger: s.ledger, Receivers: rs, Changed: s.ctrl.Changed, Logger: s.log.With("part", "notifications")}, nil
}
