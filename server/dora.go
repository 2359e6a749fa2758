package server

import (
	"github.com/ferryhq/ferry/dora"
)

// doraReporter computes the DORA figures from the ledger and the app's
// repository. Start makes one, which the API (GET /api/v1/dora), /metrics
// and the dashboard share, and with it one cache of commit times.
func (s *Server) doraReporter() *dora.Reporter {
	envs := make([]dora.Env, 0, len(s.cfg.Environments))
	for _, e := range s.cfg.Environments {
		envs = append(envs, dora.Env{Name: e.Name, From: e.From})
	}
	return &dora.Reporter{
		App: s.cfg.App, Envs: envs, Ledger: s.ledger,
		Commits: dora.NewGitCommits(s.repo).WithContext, Now: s.opts.Now,
	}
}
