package api

import (
	"context"
	"net/http"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/dora"
)

// Dora is what the API asks for the DORA figures (*dora.Reporter): of env,
// or of every production environment when env is "". An unknown
// environment is ENOTFOUND.
type Dora interface {
	Reports(ctx context.Context, env string, window time.Duration) ([]dora.Report, error)
}

// DoraBody is the body of GET /api/v1/dora.
type DoraBody struct {
	Reports []dora.Report `json:"reports"`
}

// dora serves GET /api/v1/dora?env=&window=30d: the figures of env, or of
// the production environments, over the window ending now.
func (s *Server) dora(w http.ResponseWriter, r *http.Request) {
	if s.Dora == nil {
		s.error(w, r, ferry.Errorf(ferry.ENOTFOUND, "this server computes no DORA figures"))
		return
	}
	q := r.URL.Query()
	window, err := dora.ParseWindow(q.Get("window"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	reps, err := s.Dora.Reports(r.Context(), q.Get("env"), window)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if reps == nil {
		reps = []dora.Report{}
	}
	writeJSON(w, http.StatusOK, DoraBody{Reports: reps})
}
