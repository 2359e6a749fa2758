package server

import "net/http"

// handler puts the parts that answer HTTP under one root: the API (with
// /healthz and the webhooks), the Prometheus metrics and the dashboard.
// Each part checks its own access.
func (s *Server) handler(api http.Handler) (http.Handler, error) {
	dash, err := s.dashboardHandler()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/hooks/", api)
	mux.Handle("/healthz", api)
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.Handle("/", dash)
	return mux, nil
}
