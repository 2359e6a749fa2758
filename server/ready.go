package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/leader"
	"github.com/ferryhq/ferry/ledger"
)

// Readiness is what GET /readyz answers: this server's role, and while it
// stands by, the leader it forwards to. A cluster's readiness probe
// (deploy/ferry) takes a server in either role, since a standby serves
// reads and forwards the rest; only a server that can do neither is not
// ready.
type Readiness struct {
	Role   string `json:"role"`   // "leader" or "standby"
	Holder string `json:"holder"` // this run's lease holder: host name, data directory, run
	// Term is the leader's term: this server's while it leads, else the
	// leader's it stands by for (0 when none leads).
	Term int64 `json:"term"`
	// Leader and LeaderAddress name the leader a standby forwards to;
	// empty while none leads.
	Leader        string `json:"leader,omitempty"`
	LeaderAddress string `json:"leaderAddress,omitempty"`
}

// readyTimeout bounds a standby's read of the lease for /readyz, below
// the probes' own timeouts.
const readyTimeout = 2 * time.Second

// readiness answers GET /readyz for a server that leads in lead's term,
// or stands by when lead is nil (reading the lease through leases). It is
// 503 once the lead is lost (the server is stopping), and while a standby
// cannot read the ledger.
func (s *Server) readiness(lead *leader.Lead, leases interface {
	Leader(ctx context.Context, app string) (*ledger.Lease, error)
}) http.HandlerFunc {
	var term int64
	if lead != nil {
		term = lead.Term() // before Hold renews it: the term never changes
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if lead != nil {
			select {
			case <-lead.Lost():
				writeError(w, ferry.Errorf(ferry.EUNAVAILABLE, "lost the lead of term %d; stopping", term))
			default:
				writeReady(w, Readiness{Role: "leader", Holder: s.holder, Term: term})
			}
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		l, err := leases.Leader(ctx, s.cfg.App)
		if err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND {
			s.log.Warn("readiness: read the leader lease", "err", err)
			writeError(w, ferry.Errorf(ferry.EUNAVAILABLE, "standing by, but cannot read the ledger: %s", ferry.ErrorMessage(err)))
			return
		}
		ready := Readiness{Role: "standby", Holder: s.holder}
		if l != nil && l.Live(s.opts.Now()) {
			ready.Term, ready.Leader, ready.LeaderAddress = l.Term, l.Holder, l.Address
		}
		writeReady(w, ready)
	}
}

func writeReady(w http.ResponseWriter, ready Readiness) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(ready)
}
