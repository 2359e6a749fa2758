package server

import "net/http"

// dashboardHandler serves the web dashboard at /; nil while ferry has none.
func (s *Server) dashboardHandler() http.Handler { return nil }
