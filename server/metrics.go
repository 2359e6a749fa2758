package server

import (
	"encoding/json"
	"net/http"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/metrics"
)

// metricsHandler serves /metrics in the Prometheus text format, computed
// at each scrape from the ledger, the controller's status and git (package
// metrics). Like the API, it needs a token, with the viewer role: a
// Prometheus scrape config sends it as `authorization: {credentials: …}`
// (docs/metrics.md).
func (s *Server) metricsHandler(p httpParts) http.Handler {
	cfg := metrics.Config{App: s.cfg.App, Ledger: p.ledger, Envs: p.ctrl, Dora: p.dora, Canaries: p.ctrl}
	h := metrics.Handler(metrics.NewRegistry(metrics.New(cfg)), s.log.With("part", "metrics"))
	return auth.Middleware(s.tokens(p.ledger).Lookup, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := auth.Require(r, ferry.RoleViewer); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ferry.HTTPStatus(err))
			_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: ferry.ErrorMessage(err), Code: ferry.ErrorCode(err)})
			return
		}
		h.ServeHTTP(w, r)
	}))
}
