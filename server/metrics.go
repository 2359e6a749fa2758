package server

import "net/http"

// metricsHandler serves /metrics; nil while ferry has none.
func (s *Server) metricsHandler() http.Handler { return nil }
