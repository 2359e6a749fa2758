package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/dora"
)

// dashboardHandler serves the web dashboard at /: what runs where, what
// waits for release, pipelines, history, the outbox's notifications, and
// the release actions for a signed-in token whose role allows them (an
// admin's override queued like the API's) (package dashboard), and the DORA
// figures of the production environments over dora.DefaultWindow. Its event
// streams carry follow=1, so endStreams lets them go at shutdown.
func (s *Server) dashboardHandler(p httpParts) (http.Handler, error) {
	d, err := dashboard.New(dashboard.Config{
		App: s.cfg.App, Version: s.opts.Version, Envs: s.cfg.Domain(),
		Environments: p.ctrl, Releases: p.ctrl, Approvals: p.ctrl, Queue: p.ctrl, Builds: p.builds, Ledger: p.ledger, Outbox: p.ledger,
		Tokens: s.tokens(p.ledger).Lookup, Leases: p.ledger, Canaries: p.ctrl,
		DORA: func(ctx context.Context) ([]dora.Report, error) {
			return p.dora.Reports(ctx, "", dora.DefaultWindow)
		},
		Logger: s.log.With("part", "dashboard"), Now: s.opts.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return d, nil
}
