package api

import (
	"net/http"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/ledger"
)

// alerts is what plain GET /api/v1/status warns about for each
// environment: the root package's ferry.MainlineRed on the ledger's
// builds, and the controller's verdicts — an environment lagging its
// branch's head (the rule convergence and status --check apply) and a
// release head it did not deploy. A ledger that cannot be read leaves
// the alerts out (the log says why): the status itself still answers.
func (s *Server) alerts(r *http.Request, envs []controller.EnvStatus) [][]ferry.Alert {
	ctx := r.Context()
	domain := make([]ferry.Environment, 0, len(envs))
	for _, st := range envs {
		if e, ok := s.Envs.Environment(st.Name); ok {
			domain = append(domain, e)
		}
	}
	newest := map[string]*ferry.Build{} // by branch and states
	find := func(branch string, states ...ferry.BuildState) *ferry.Build {
		key := branch + "\x00" + string(states[len(states)-1])
		if b, ok := newest[key]; ok {
			return b
		}
		bs, err := s.Ledger.Builds(ctx, ledger.BuildFilter{App: s.App, Branch: branch, States: states, Limit: 1})
		if err != nil {
			s.logError(r, "status alerts", err, "branch", branch)
		}
		var b *ferry.Build
		if len(bs) == 1 {
			b = bs[0]
		}
		newest[key] = b
		return b
	}
	out := make([][]ferry.Alert, len(envs))
	for i, st := range envs {
		env, ok := s.Envs.Environment(st.Name)
		if !ok {
			continue
		}
		var list []ferry.Alert
		if env.Branch != "" && env.From == "" {
			mainline := ferry.Mainline(domain, env.Name)
			if env.Branch == mainline {
				if a, ok := ferry.MainlineRed(env, mainline, find(mainline, ferry.BuildSucceeded, ferry.BuildFailed)); ok {
					list = append(list, a)
				}
			}
		}
		if st.Lag != "" {
			list = append(list, ferry.Alert{Kind: ferry.AlertLagging, Message: st.Lag})
		}
		if st.Alert != "" {
			list = append(list, ferry.Alert{Kind: ferry.AlertRelease, Message: st.Alert})
		}
		out[i] = list
	}
	return out
}
