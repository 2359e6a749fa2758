package server

import (
	"github.com/ferryhq/ferry/dora"
)

// doraReporter computes the DORA figures (GET /api/v1/dora, /metrics) from
// the ledger and the app's repository. Each caller gets its own reporter,
// and so its own cache of commit times.
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
