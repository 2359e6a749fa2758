package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// sse writes server-sent events (text/event-stream).
type sse struct {
	w *bufio.Writer
	f http.Flusher
}

func newSSE(w http.ResponseWriter) (*sse, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		return nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	return &sse{w: bufio.NewWriter(w), f: f}, true
}

// event writes one event; id "" leaves the stream's last event id as it
// is. data must be one line.
func (s *sse) event(id, name, data string) {
	if id != "" {
		fmt.Fprintf(s.w, "id: %s\n", id)
	}
	fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, data)
}

func (s *sse) comment(text string) { fmt.Fprintf(s.w, ": %s\n\n", text) }

func (s *sse) flush() error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	s.f.Flush()
	return nil
}

// closed reports, without waiting, whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// changes streams an event whenever what the page shows changed: "envs"
// when the controller broadcast a change of deployments, locks or alerts,
// "builds" when the builder's builds or steps changed (log lines alone,
// which the builder also broadcasts, do not count: running builds stream
// their own). A burst of changes within Settle is one event. A client
// that reconnects (Last-Event-ID) may have missed events, so it gets both
// at once.
func (d *Dashboard) changes(w http.ResponseWriter, r *http.Request) {
	if _, ok := d.signedIn(w, r, false); !ok {
		return
	}
	ctx := r.Context()
	envsCh, buildsCh := d.cfg.Environments.Changed(), d.cfg.Builds.Changed()
	sig := d.buildsSignature(ctx)
	s, ok := newSSE(w)
	if !ok {
		d.errorPage(w, r, http.StatusInternalServerError, "No stream", "This connection cannot stream events.")
		return
	}
	var n int64
	if last, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && last > 0 {
		n = last
	}
	emit := func(topic string) {
		n++
		s.event(strconv.FormatInt(n, 10), topic, topic)
	}
	fmt.Fprintf(s.w, "retry: %d\n\n", 2000)
	if r.Header.Get("Last-Event-ID") != "" {
		emit("envs")
		emit("builds")
	} else {
		s.comment("ferry: listening")
	}
	if s.flush() != nil {
		return
	}
	heartbeat := time.NewTicker(d.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			if !d.stillSignedIn(r) {
				return
			}
			s.comment("keep-alive")
			if s.flush() != nil {
				return
			}
			continue
		case <-envsCh:
		case <-buildsCh:
		}
		// Let a burst settle, then take new channels before reading
		// anything, so that no change after this point is missed.
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.cfg.Settle):
		}
		envs, builds := closed(envsCh), closed(buildsCh)
		if envs {
			envsCh = d.cfg.Environments.Changed()
			emit("envs")
		}
		if builds {
			buildsCh = d.cfg.Builds.Changed()
			if now := d.buildsSignature(ctx); now != sig {
				sig = now
				emit("builds")
			}
		}
		if s.flush() != nil {
			return
		}
	}
}

// stillSignedIn reports whether r's session still holds, so that a stream
// of a token revoked meanwhile ends at its next heartbeat (the browser's
// reconnect is then refused). A ledger that cannot answer keeps it.
func (d *Dashboard) stillSignedIn(r *http.Request) bool {
	tok, _, err := d.who(r)
	return err != nil || tok != nil
}

// buildsSignature sums up what the pipelines part shows of the newest
// builds: their states and their steps' states.
func (d *Dashboard) buildsSignature(ctx context.Context) string {
	bs, err := d.cfg.Ledger.Builds(ctx, ledger.BuildFilter{App: d.cfg.App, Limit: recentBuilds})
	if err != nil {
		return "error"
	}
	var sb strings.Builder
	for _, b := range bs {
		fmt.Fprintf(&sb, "%d:%s;", b.ID, b.State)
		if b.State.Final() {
			continue
		}
		full, err := d.cfg.Ledger.Build(ctx, b.ID)
		if err != nil {
			return "error"
		}
		for _, st := range full.Steps {
			fmt.Fprintf(&sb, "%s=%s/%d,", st.Name, st.State, st.Attempts)
		}
	}
	return sb.String()
}

// logLine is the data of a "line" event.
type logLine struct {
	Step string    `json:"step"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// stepData is one step in a "steps" event.
type stepData struct {
	Name     string          `json:"name"`
	State    ferry.StepState `json:"state"`
	Attempts int             `json:"attempts"`
	Error    string          `json:"error,omitempty"`
}

// endData is the data of the "end" event.
type endData struct {
	State  ferry.BuildState `json:"state"`
	Reason string           `json:"reason,omitempty"`
	Digest string           `json:"digest,omitempty"`
}

// buildLog streams a build's log as server-sent events: "line" events
// whose id is the line's sequence number, "steps" events with every step
// whenever one changed, and one "end" event with the build's final state,
// after which the stream ends. It starts after the line named by
// Last-Event-ID (a reconnecting client) or the after parameter.
func (d *Dashboard) buildLog(w http.ResponseWriter, r *http.Request) {
	if _, ok := d.signedIn(w, r, false); !ok {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		d.errorPage(w, r, http.StatusNotFound, "Not found", "No such build.")
		return
	}
	after := int64(0)
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")} {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			after = n
			break
		}
	}
	ctx := r.Context()
	if _, err := d.cfg.Ledger.Build(ctx, id); err != nil {
		d.errorPage(w, r, ferry.HTTPStatus(err), "No build", d.safe("build", err))
		return
	}
	s, ok := newSSE(w)
	if !ok {
		d.errorPage(w, r, http.StatusInternalServerError, "No stream", "This connection cannot stream events.")
		return
	}
	fmt.Fprintf(s.w, "retry: %d\n\n", 2000)
	err = ledger.Follow(ctx, d.cfg.Ledger, ledger.LogFollow{
		Build: id, After: after, Live: true, Changed: d.cfg.Builds.Changed, Heartbeat: d.cfg.Heartbeat,
	}, &sseLog{s: s, stillSignedIn: func() bool { return d.stillSignedIn(r) }})
	if err != nil && ctx.Err() == nil && !errors.Is(err, errSignedOut) {
		d.cfg.Logger.Error("dashboard: read build log", "build", id, "err", err)
	}
}

// errSignedOut ends a stream whose session ended.
var errSignedOut = errors.New("the session ended")

// sseLog writes what ledger.Follow reads as server-sent events (see
// buildLog); at each heartbeat it ends the stream of a session that ended.
type sseLog struct {
	s             *sse
	stillSignedIn func() bool
}

func (l *sseLog) Read(lines []ferry.LogLine, b *ferry.Build, stepsChanged bool) error {
	for _, ln := range lines {
		data, _ := json.Marshal(logLine{Step: ln.Step, Time: ln.Time, Text: ln.Text})
		l.s.event(strconv.FormatInt(ln.Seq, 10), "line", string(data))
	}
	if stepsChanged {
		steps := make([]stepData, 0, len(b.Steps))
		for _, st := range b.Steps {
			steps = append(steps, stepData{Name: st.Name, State: st.State, Attempts: st.Attempts, Error: st.Error})
		}
		data, _ := json.Marshal(steps)
		l.s.event("", "steps", string(data))
	}
	return l.s.flush()
}

func (l *sseLog) End(b *ferry.Build) error {
	data, _ := json.Marshal(endData{State: b.State, Reason: b.Reason, Digest: b.Digest})
	l.s.event("", "end", string(data))
	return l.s.flush()
}

func (l *sseLog) Idle() error {
	if !l.stillSignedIn() {
		return errSignedOut
	}
	l.s.comment("keep-alive")
	return l.s.flush()
}
