package api

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/ledger"
)

// Environments is what the API asks of the controller.
type Environments interface {
	Status(ctx context.Context) ([]controller.EnvStatus, error)
	Logs(ctx context.Context, env string, w io.Writer, tail int, follow bool) error
	Names() []string
	// Environment is the environment named name as configured, and
	// whether there is one.
	Environment(name string) (ferry.Environment, bool)
	Check(ctx context.Context) ([]controller.Drift, error)
}

// DeploymentLedger is what the API reads of deployments.
type DeploymentLedger interface {
	Deployment(ctx context.Context, id int64) (*ferry.Deployment, error)
	Deployments(ctx context.Context, f ledger.DeploymentFilter) ([]*ferry.Deployment, error)
}

// StatusBody is the body of GET /api/v1/status.
type StatusBody struct {
	Environments []EnvStatus `json:"environments"`
	// Drift is set with ?check=1: every disagreement between the ledger,
	// the runtimes, the registry tags and git, with its fix.
	Drift []Drift `json:"drift,omitempty"`
	// Checked says whether drift was looked for.
	Checked bool `json:"checked,omitempty"`
	// Leader is the server that leads the app's ledger (builds, polls,
	// deploys); absent when the API has no ledger lease to read.
	Leader *Leader `json:"leader,omitempty"`
}

// Leader is the ledger's leader lease as GET /api/v1/status shows it.
type Leader struct {
	Holder    string    `json:"holder"`
	Address   string    `json:"address,omitempty"`
	Term      int64     `json:"term"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Leases reads who leads the ledger.
type Leases interface {
	Leader(ctx context.Context, app string) (*ledger.Lease, error)
}

// EnvStatus is one environment in GET /api/v1/status (and `ferry
// status`). The JSON shape is a contract: fields may be added, never
// renamed.
type EnvStatus struct {
	Name        string   `json:"name"`
	Commit      string   `json:"commit"`
	ShortCommit string   `json:"shortCommit"`
	Digest      string   `json:"digest"`
	Release     string   `json:"release"`
	Replicas    Replicas `json:"replicas"`
	// State is healthy, rolling, degraded, down or empty.
	State string `json:"state"`
	// DeployedAt is when the running deployment finished; left out while
	// the environment runs nothing.
	DeployedAt   time.Time       `json:"deployedAt,omitzero"`
	DeployedBy   string          `json:"deployedBy"`
	DeploymentID int64           `json:"deploymentId,omitempty"`
	URL          string          `json:"url,omitempty"`
	Progress     string          `json:"progress,omitempty"`
	Pods         []ferry.Replica `json:"pods,omitempty"`
	// Error says why the runtime's status could not be read.
	Error string `json:"error,omitempty"`
	// Alert is a release head pushed to git but not deployed, and why.
	Alert string `json:"alert,omitempty"`
	// Alerts is every alert of the environment (the one above among
	// them): its mainline red, its release branch not deployed, or it
	// lagging its branch. Left out when there is none.
	Alerts []ferry.Alert `json:"alerts,omitempty"`
	// Lock is set while the environment is locked.
	Lock *ferry.Lock `json:"lock,omitempty"`
}

// Replicas counts an environment's replicas.
type Replicas struct {
	Ready   int `json:"ready"`
	Desired int `json:"desired"`
}

// Drift is one place where what runs, the ledger, the registry and git
// disagree, with the command that fixes it.
type Drift struct {
	Env  string `json:"env"`
	What string `json:"what"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Fix  string `json:"fix"`
}

// envStatus is st on the wire. A runtime's error shows as its safe
// message; the log keeps the detail.
func (s *Server) envStatus(r *http.Request, st controller.EnvStatus) EnvStatus {
	out := EnvStatus{
		Name: st.Name, Commit: st.Commit, ShortCommit: st.ShortCommit, Digest: st.Digest, Release: st.Release,
		Replicas: Replicas{Ready: st.Replicas.Ready, Desired: st.Replicas.Desired},
		State:    st.State, DeployedAt: st.DeployedAt, DeployedBy: st.DeployedBy, DeploymentID: st.DeploymentID,
		URL: st.URL, Progress: st.Progress, Pods: st.Pods, Alert: st.Alert, Lock: st.Lock,
	}
	if st.Err != nil {
		out.Error = ferry.ErrorMessage(st.Err)
		s.logError(r, "runtime status", st.Err, "env", st.Name)
	}
	return out
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	envs, err := s.Envs.Status(r.Context())
	if err != nil {
		s.error(w, r, err)
		return
	}
	body := StatusBody{Environments: make([]EnvStatus, len(envs))}
	alerts := s.alerts(r, envs)
	for i, st := range envs {
		body.Environments[i] = s.envStatus(r, st)
		body.Environments[i].Alerts = alerts[i]
	}
	if s.Leases != nil {
		switch l, err := s.Leases.Leader(r.Context(), s.App); {
		case err == nil:
			body.Leader = &Leader{Holder: l.Holder, Address: l.Address, Term: l.Term, ExpiresAt: l.ExpiresAt}
		case ferry.ErrorCode(err) != ferry.ENOTFOUND:
			s.logError(r, "read the leader lease", err)
		}
	}
	if queryBool(r, "check") {
		drifts, err := s.Envs.Check(r.Context())
		if err != nil {
			s.error(w, r, err)
			return
		}
		for _, d := range drifts {
			body.Drift = append(body.Drift, Drift{Env: d.Env, What: d.What, Want: d.Want, Got: d.Got, Fix: d.Fix})
		}
		body.Checked = true
	}
	writeJSON(w, http.StatusOK, body)
}

// ScaleRequest is the body of POST /api/v1/envs/{env}/scale.
type ScaleRequest struct {
	Replicas int    `json:"replicas"`
	Reason   string `json:"reason,omitempty"`
}

// DeploymentList is the body of GET /api/v1/deployments.
type DeploymentList struct {
	Deployments []*ferry.Deployment `json:"deployments"`
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	limit, before, err := page(r, 50)
	if err != nil {
		s.error(w, r, err)
		return
	}
	env := r.URL.Query().Get("env")
	if env != "" {
		if err := s.knownEnv(env); err != nil {
			s.error(w, r, err)
			return
		}
	}
	f := ledger.DeploymentFilter{App: s.App, Env: env, Limit: int(limit), BeforeID: before}
	if f.States, err = queryEnum(r, "state", "deployment state", ferry.DeploymentStates()); err != nil {
		s.error(w, r, err)
		return
	}
	if f.Kinds, err = queryEnum(r, "kind", "deployment kind", ferry.DeploymentKinds()); err != nil {
		s.error(w, r, err)
		return
	}
	ds, err := s.Deployments.Deployments(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, DeploymentList{Deployments: ds})
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	d, err := s.Deployments.Deployment(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// knownEnv returns nil when the controller has an environment named name,
// and an ENOTFOUND error listing the ones it has when not.
func (s *Server) knownEnv(name string) error {
	names := s.Envs.Names()
	if !slices.Contains(names, name) {
		return ferry.UnknownEnvironment(name, names)
	}
	return nil
}

// envLogs streams an environment's replica logs as plain text.
func (s *Server) envLogs(w http.ResponseWriter, r *http.Request) {
	env := r.PathValue("env")
	if err := s.knownEnv(env); err != nil {
		s.error(w, r, err)
		return
	}
	tail, err := queryInt(r, "tail", 100)
	if err != nil {
		s.error(w, r, err)
		return
	}
	follow := queryBool(r, "follow")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fw := &flushWriter{w: bufio.NewWriter(w), f: w.(http.Flusher)}
	if err := s.Envs.Logs(r.Context(), env, fw, int(tail), follow); err != nil && r.Context().Err() == nil {
		s.Logger.Warn("environment logs", "env", env, "err", err)
	}
	fw.w.Flush()
}

// flushWriter flushes after every write so followers see lines at once.
type flushWriter struct {
	w *bufio.Writer
	f http.Flusher
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
		f.f.Flush()
	}
	return n, err
}
