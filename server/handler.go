package server

import (
	"net/http"

	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/leader"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/metrics"
)

// httpParts are what answers HTTP, all over one ledger store: the leader's
// working parts, or a standby's, which only read (standby.go).
type httpParts struct {
	ledger ledger.Store
	// ctrl is the controller: the leader's, or a standby's that does not
	// act and whose changes are polled.
	ctrl   controllerView
	builds interface {
		api.Builds
		dashboard.Builds
	}
	dora  *dora.Reporter
	hooks http.Handler
	// lead is this server's leadership; nil while it stands by.
	lead *leader.Lead
}

// controllerView is what the API, the dashboard and /metrics ask of the
// controller.
type controllerView interface {
	api.Environments
	api.Releases
	api.ActionQueue
	api.Approvals
	api.Canaries
	metrics.Canaries
	dashboard.Environments
	dashboard.Releases
	dashboard.Approvals
}

// handler puts the parts that answer HTTP under one root: the API (with
// /healthz and the webhooks), /readyz (ready.go), the Prometheus metrics
// and the dashboard.
// Each part checks its own access.
func (s *Server) handler(p httpParts) (http.Handler, error) {
	apiServer := &api.Server{
		App: s.cfg.App, Version: s.opts.Version, Ledger: p.ledger, Builds: p.builds, Hooks: p.hooks, Tokens: s.tokens(p.ledger),
		Envs: p.ctrl, Deployments: p.ledger, Releases: p.ctrl, Actions: p.ctrl, Approvals: p.ctrl, Canaries: p.ctrl, Notifications: p.ledger, Dora: p.dora,
		Leases: p.ledger, Logger: s.log.With("part", "api"),
	}
	dash, err := s.dashboardHandler(p)
	if err != nil {
		return nil, err
	}
	apiHandler := apiServer.Handler()
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	mux.Handle("/hooks/", apiHandler)
	mux.Handle("/healthz", apiHandler)
	mux.Handle("GET /readyz", s.readiness(p.lead, p.ledger))
	mux.Handle("GET /metrics", s.metricsHandler(p))
	mux.Handle("/", dash)
	return mux, nil
}
