package builder

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/oci"
	"github.com/ferryhq/ferry/pipeline"
	"github.com/ferryhq/ferry/source"
)

// recorder is the pipeline listener that writes a build's steps and log
// lines to the ledger and wakes API followers.
type recorder struct {
	ctx   context.Context
	b     *Builder
	build *ferry.Build

	mu    sync.Mutex
	steps map[string]*ferry.Step

	// Lines are written in batches: one ledger commit per line is too slow
	// on PostgreSQL. A batch is flushed every flushEvery, at each step
	// change and at the end.
	linesMu sync.Mutex
	pending []ferry.LogLine
	stop    chan struct{}
	done    chan struct{}
}

const flushEvery = 100 * time.Millisecond

func (r *recorder) start() {
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				r.flush()
				return
			case <-t.C:
				r.flush()
			}
		}
	}()
}

// close flushes what is left and stops the flusher.
func (r *recorder) close() {
	close(r.stop)
	<-r.done
}

func (r *recorder) flush() {
	r.linesMu.Lock()
	defer r.linesMu.Unlock()
	if len(r.pending) == 0 {
		return
	}
	if err := r.b.ledger.AppendLog(r.ctx, r.build.ID, r.pending); err != nil {
		r.b.log.Error("record log lines", "build", r.build.ID, "lines", len(r.pending), "err", err)
	}
	r.pending = r.pending[:0]
	r.b.changed.Notify()
}

func (r *recorder) plan(steps []pipeline.Step) {
	r.steps = make(map[string]*ferry.Step, len(steps))
	for i, s := range steps {
		st := &ferry.Step{BuildID: r.build.ID, Seq: i + 1, Name: s.Name, State: ferry.StepPending}
		r.steps[s.Name] = st
		r.save(st)
	}
}

func (r *recorder) skipAll(steps []pipeline.Step, reason string) {
	for _, s := range steps {
		r.StepState(s.Name, 0, pipeline.Skipped, errors.New(reason))
	}
	r.Line(StepPush, reason)
}

// StepState implements pipeline.Listener.
func (r *recorder) StepState(name string, attempt int, state pipeline.State, err error) {
	r.flush() // lines before the state change are stored before it
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.steps[name]
	now := r.b.now()
	switch state {
	case pipeline.Running:
		st.State, st.Attempts, st.Error = ferry.StepRunning, attempt, ""
		if st.StartedAt.IsZero() {
			st.StartedAt = now
		}
	case pipeline.Retrying:
		st.State, st.Error = ferry.StepRunning, err.Error()
	default:
		st.State, st.FinishedAt = ferry.StepState(state), now
		if err != nil {
			st.Error = err.Error()
		}
	}
	r.save(st)
}

func (r *recorder) save(st *ferry.Step) {
	if err := r.b.ledger.SaveStep(r.ctx, *st); err != nil {
		r.b.log.Error("record step", "build", r.build.ID, "step", st.Name, "err", err)
	}
	r.b.changed.Notify()
}

// Line implements pipeline.Listener.
func (r *recorder) Line(step, text string) {
	r.linesMu.Lock()
	defer r.linesMu.Unlock()
	r.pending = append(r.pending, ferry.LogLine{BuildID: r.build.ID, Step: step, Time: r.b.now(), Text: text})
}

func isRetryable(err error) bool { return oci.IsRetryable(err) || source.IsRetryable(err) }
