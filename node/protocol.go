package node

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/runtime/local"
)

// The node's protocol is HTTP/1.1 over its unix socket, every path under
// /v1/, JSON bodies decoded strictly (an unknown field is refused) and
// NDJSON streams for what goes on (a rollout's progress, log lines), one
// handler per call (node.go) and one client method per call (client.go):
//
//	GET    /v1/health                 Health
//	GET    /v1/watch                  a stream that ends when the node stops
//	PUT    /v1/envs/{env}             EnvConfig → EnvInfo (open or adopt)
//	DELETE /v1/envs/{env}             release: stop everything, forget it
//	POST   /v1/envs/{env}/apply       ferry.Spec → stream of Event
//	POST   /v1/envs/{env}/scale       ScaleRequest
//	GET    /v1/envs/{env}/status      ferry.Status
//	GET    /v1/envs/{env}/logs?tail=N&follow=1   stream of Event
//	POST   /v1/envs/{env}/split       ferry.Split → stream of Event (a canary)
//	DELETE /v1/envs/{env}/split       end the split
//	GET    /v1/envs/{env}/figures     the split's figures per track
//	POST   /v1/handover               the listening sockets, to a new node (handover.go)
const apiPrefix = "/v1/"

// EnvConfig is how the node runs one environment: what ferry.yaml says of
// its local runtime. The node keeps it with the last applied spec, so it
// can bring the environment back by itself.
type EnvConfig struct {
	Env       string `json:"env"`
	Listen    string `json:"listen"`
	Readiness string `json:"readiness,omitempty"`
	PortEnv   string `json:"portEnv,omitempty"`
	// Args are local.args: templates over config.ReplicaData.
	Args      []string        `json:"args,omitempty"`
	Resources ferry.Resources `json:"resources,omitzero"`
	// NoSandbox runs replicas as plain processes even as root.
	NoSandbox bool `json:"noSandbox,omitempty"`
}

// EnvInfo is what runs an environment, as Open reports it.
type EnvInfo struct {
	// Addr is the balancer's address, with the port it really got.
	Addr      string `json:"addr"`
	Sandboxed bool   `json:"sandboxed"`
}

// Health is the node's answer to GET /v1/health.
type Health struct {
	PID     int      `json:"pid"`
	Version string   `json:"version"`
	Envs    []string `json:"envs"`
}

// ScaleRequest is the body of POST /v1/envs/{env}/scale.
type ScaleRequest struct {
	Replicas int `json:"replicas"`
}

// Event is one line of an NDJSON stream: progress of a rollout, output of
// the replicas, and at the end either Done or Error.
type Event struct {
	Progress *ferry.Progress `json:"progress,omitempty"`
	Text     string          `json:"text,omitempty"`
	Done     bool            `json:"done,omitempty"`
	Error    *WireError      `json:"error,omitempty"`
}

// WireError carries an error across the socket: its ferry code and
// user-safe message, so that ferry.ErrorCode and ferry.ErrorMessage answer
// on the client as they would have on the node, its whole text, and the
// *local.ReplicaError inside it (a rollout's or a canary's failing
// replica), so that the client's Apply and Split fail as the local
// runtime's do.
type WireError struct {
	Code    string              `json:"code"`
	Message string              `json:"message"`
	Text    string              `json:"text"`
	Replica *local.ReplicaError `json:"replica,omitempty"`
}

func wireError(err error) *WireError {
	code := ""
	if _, ok := errors.AsType[*ferry.Error](err); ok {
		code = ferry.ErrorCode(err)
	}
	we := &WireError{Code: code, Message: ferry.ErrorMessage(err), Text: err.Error()}
	if re, ok := errors.AsType[*local.ReplicaError](err); ok {
		we.Replica = re
	}
	return we
}

// Err turns the wire form back into an error.
func (w *WireError) Err() error {
	var inner error = &wireText{text: w.Text, replica: w.Replica}
	if w.Code == "" {
		return inner
	}
	return &ferry.Error{Code: w.Code, Message: w.Message, Err: inner}
}

// wireText is an error as the node wrote it, unwrapping to the replica
// error it held.
type wireText struct {
	text    string
	replica *local.ReplicaError
}

func (e *wireText) Error() string { return e.text }

func (e *wireText) Unwrap() error {
	if e.replica == nil {
		return nil
	}
	return e.replica
}

// maxBody bounds a request's JSON body.
const maxBody = 1 << 20

// decode reads one JSON value from r into v, refusing unknown fields and
// anything after the value.
func decode(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return ferry.Wrap(err, ferry.EINVALID, "request body: %v", err)
	}
	if dec.More() {
		return ferry.Errorf(ferry.EINVALID, "request body: more than one JSON value")
	}
	return nil
}

// writeError answers err as JSON with its status.
func writeError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ferry.HTTPStatus(err))
	json.NewEncoder(w).Encode(wireError(err))
}

// writeJSON answers v with 200.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// stream writes an NDJSON stream, flushing each line.
type stream struct {
	w   http.ResponseWriter
	enc *json.Encoder
	rc  *http.ResponseController
}

func newStream(w http.ResponseWriter) *stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	s := &stream{w: w, enc: json.NewEncoder(w), rc: http.NewResponseController(w)}
	// The headers go now: a followed log may have no line for a long time,
	// and a client waiting for them cannot tell that from a dead node.
	s.rc.Flush()
	return s
}

func (s *stream) send(e Event) error {
	if err := s.enc.Encode(e); err != nil {
		return err
	}
	return s.rc.Flush()
}

// Write sends p as a Text event: the stream is the io.Writer Logs writes
// to.
func (s *stream) Write(p []byte) (int, error) {
	if err := s.send(Event{Text: string(p)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// end sends the last event: Done, or the error.
func (s *stream) end(err error) {
	if err != nil {
		s.send(Event{Error: wireError(err)})
		return
	}
	s.send(Event{Done: true})
}

// errCut is a stream that ended without its last event: the node went
// away in the middle.
func errCut(what string) error {
	return ferry.Errorf(ferry.EUNAVAILABLE, "node: %s: stream cut before its end (did the node stop?)", what)
}
