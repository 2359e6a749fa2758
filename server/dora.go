package server

import (
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/ledger"
)

// doraReporter computes the DORA figures from the ledger and the app's
// repository. Start makes one, which the API (GET /api/v1/dora), /metrics
// and the dashboard share, and with it one copy of each environment's
// window and one cache of commit times; each change's commit times are
// kept in the ledger, read from git once.
func (s *Server) doraReporter(store ledger.Store) *dora.Reporter {
	return &dora.Reporter{
		App: s.cfg.App, Envs: s.cfg.Domain(), Ledger: store, Stored: store,
		Commits: dora.NewGitCommits(s.repo).WithContext, Now: s.opts.Now,
	}
}
