package server

import "net/http"

// handler puts the parts that answer HTTP under one root: the API (with
// /healthz and the webhooks), the Prometheus metrics and the dashboard.
// Each part checks its own access.
func (s *Server) handler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/hooks/", api)
	mux.Handle("/healthz", api)
	if h := s.metricsHandler(); h != nil {
		mux.Handle("GET /metrics", h)
	}
	if h := s.dashboardHandler(); h != nil {
		mux.Handle("/", h)
	} else {
		mux.Handle("/", api)
	}
	return mux
}
