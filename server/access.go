package server

import "github.com/ferryhq/ferry/auth"

// tokens is access control on the server's ledger.
func (s *Server) tokens() *auth.Tokens {
	return &auth.Tokens{Store: s.ledger, App: s.cfg.App, Now: s.opts.Now, Logger: s.log.With("part", "auth")}
}
