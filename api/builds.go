package api

import (
	"bufio"
	"encoding/json"
	"net/http"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// BuildList is the body of GET /api/v1/builds.
type BuildList struct {
	Builds []*ferry.Build `json:"builds"`
}

func (s *Server) listBuilds(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, before, err := page(r, 50)
	if err != nil {
		s.error(w, r, err)
		return
	}
	f := ledger.BuildFilter{App: s.App, Branch: q.Get("branch"), Limit: int(limit), BeforeID: before}
	if f.States, err = queryEnum(r, "state", "build state", ferry.BuildStates()); err != nil {
		s.error(w, r, err)
		return
	}
	builds, err := s.Ledger.Builds(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, BuildList{Builds: builds})
}

// TriggerRequest is the body of POST /api/v1/builds.
type TriggerRequest struct {
	Branch string `json:"branch"`
	Commit string `json:"commit,omitempty"`
}

// TriggerResponse says whether a build was queued or already existed.
type TriggerResponse struct {
	Queued bool         `json:"queued"`
	Build  *ferry.Build `json:"build"`
}

func (s *Server) triggerBuild(w http.ResponseWriter, r *http.Request) {
	var req TriggerRequest
	if err := decode(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if req.Branch == "" {
		s.error(w, r, ferry.Errorf(ferry.EINVALID, "branch is required"))
		return
	}
	b, queued, err := s.Builds.Trigger(r.Context(), req.Branch, req.Commit, actor(r))
	if err != nil {
		s.error(w, r, err)
		return
	}
	code := http.StatusOK
	if queued {
		code = http.StatusAccepted
	}
	writeJSON(w, code, TriggerResponse{Queued: queued, Build: b})
}

func (s *Server) getBuild(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	b, err := s.Ledger.Build(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// CancelRequest is the optional body of POST /api/v1/builds/{id}/cancel.
type CancelRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Server) cancelBuild(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	var req CancelRequest
	if err := decodeOptional(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.Builds.Cancel(r.Context(), id, actor(r), req.Reason); err != nil {
		s.error(w, r, err)
		return
	}
	b, err := s.Ledger.Build(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// LogRecord is one line of GET /api/v1/builds/{id}/logs, a stream of
// newline-delimited JSON objects: log lines, step changes, and a final
// record with the build's end state.
type LogRecord struct {
	Line  *ferry.LogLine `json:"line,omitempty"`
	Steps []ferry.Step   `json:"steps,omitempty"`
	// State is set on the last record, once the build has ended.
	State  ferry.BuildState `json:"state,omitempty"`
	Reason string           `json:"reason,omitempty"`
	Digest string           `json:"digest,omitempty"`
}

// buildLogs streams a build's log. Without follow=1 it writes the lines
// stored so far and the build's state. With follow=1 it keeps the
// connection open, writing lines and step changes as they happen, until the
// build ends.
func (s *Server) buildLogs(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	after, err := queryInt(r, "after", 0)
	if err != nil {
		s.error(w, r, err)
		return
	}
	follow := queryBool(r, "follow")
	ctx := r.Context()
	if _, err := s.Ledger.Build(ctx, id); err != nil {
		s.error(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	out := newNDJSONLog(w)
	err = ledger.Follow(ctx, s.Ledger, ledger.LogFollow{
		Build: id, After: after, Live: follow, Changed: s.Builds.Changed, Heartbeat: s.Heartbeat,
	}, out)
	if err != nil && ctx.Err() == nil {
		s.Logger.Error("read build log", "build", id, "err", err)
	}
}

// ndjsonLog writes what ledger.Follow reads as LogRecords, one JSON object
// a line; an empty object is a keep-alive.
type ndjsonLog struct {
	bw  *bufio.Writer
	enc *json.Encoder
	f   http.Flusher
}

func newNDJSONLog(w http.ResponseWriter) *ndjsonLog {
	bw := bufio.NewWriter(w)
	f, _ := w.(http.Flusher)
	return &ndjsonLog{bw: bw, enc: json.NewEncoder(bw), f: f}
}

func (n *ndjsonLog) Read(lines []ferry.LogLine, b *ferry.Build, stepsChanged bool) error {
	for i := range lines {
		if err := n.enc.Encode(LogRecord{Line: &lines[i]}); err != nil {
			return err
		}
	}
	if stepsChanged {
		if err := n.enc.Encode(LogRecord{Steps: b.Steps}); err != nil {
			return err
		}
	}
	return n.flush()
}

func (n *ndjsonLog) End(b *ferry.Build) error {
	if err := n.enc.Encode(LogRecord{State: b.State, Reason: b.Reason, Digest: b.Digest}); err != nil {
		return err
	}
	return n.flush()
}

func (n *ndjsonLog) Idle() error {
	if _, err := n.bw.WriteString("{}\n"); err != nil {
		return err
	}
	return n.flush()
}

func (n *ndjsonLog) flush() error {
	if err := n.bw.Flush(); err != nil {
		return err
	}
	if n.f != nil {
		n.f.Flush()
	}
	return nil
}

// EventList is the body of GET /api/v1/events.
type EventList struct {
	Events []ferry.Event `json:"events"`
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	limit, before, err := page(r, 100)
	if err != nil {
		s.error(w, r, err)
		return
	}
	buildID, err := queryInt(r, "build", 0)
	if err != nil {
		s.error(w, r, err)
		return
	}
	q := r.URL.Query()
	events, err := s.Ledger.Events(r.Context(), ledger.EventFilter{
		App: s.App, Env: q.Get("env"), Kind: q.Get("kind"), BuildID: buildID, Limit: int(limit), BeforeID: before,
	})
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, EventList{Events: events})
}
