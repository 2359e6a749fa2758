package server

import (
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/ledger"
)

// tokens is access control on the ledger store.
func (s *Server) tokens(store ledger.Store) *auth.Tokens {
	return &auth.Tokens{Store: store, App: s.cfg.App, Now: s.opts.Now, Logger: s.log.With("part", "auth")}
}
