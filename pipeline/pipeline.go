// Package pipeline is ferry's generic step engine. It knows steps, their
// order, attempts, cancellation and the difference between retryable and
// terminal errors; it knows nothing about git, images or registries. The
// concrete steps (test, build image, push, tag) live in package builder.
//
// The model: a Pipeline is an ordered list of Steps. Run executes them one
// after the other. Each step gets a context and a Log to write output lines
// to; the Listener hears every state change and every log line, so the
// caller can store them (the ledger) and stream them (the API) while the
// pipeline runs. A step fails the pipeline with its error unless the error is
// marked retryable (Retryable), in which case the step is attempted again
// after a backoff, up to its MaxAttempts. Cancelling the context stops the
// running step (steps must honour ctx) and marks it, and every later step,
// canceled.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Step is one unit of work in a pipeline.
type Step struct {
	Name string
	// Run does the work, writing its output to log. It must return promptly
	// once ctx is done.
	Run func(ctx context.Context, log *Log) error
	// MaxAttempts bounds how often a step is run when it keeps failing with
	// retryable errors. Zero means 1.
	MaxAttempts int
	// Skip, when it returns a non-empty reason, skips the step.
	Skip func() string
}

// State is the state of a step as the listener sees it.
type State string

// Step states reported to listeners.
const (
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Skipped   State = "skipped"
	Canceled  State = "canceled"
	Retrying  State = "retrying"
)

// Listener hears what a pipeline does. Calls come from the goroutine that
// called Run, in order; Line may also be called from goroutines started by a
// step, but never after that step's Run has returned.
type Listener interface {
	// StepState reports a step's transition; err is set for Failed and
	// Retrying, reason for Skipped and Canceled.
	StepState(name string, attempt int, state State, err error)
	// Line reports one line of a step's output.
	Line(step, text string)
}

// Sleeper waits for d or until ctx is done; tests inject one that returns at
// once. The default uses a timer.
type Sleeper func(ctx context.Context, d time.Duration) error

// Pipeline runs steps in order.
type Pipeline struct {
	Steps    []Step
	Listener Listener
	// Backoff returns the pause before attempt n+1 after attempt n failed
	// with a retryable error. Default: 1s, 2s, 4s … capped at 30s.
	Backoff func(attempt int) time.Duration
	Sleep   Sleeper
}

// Run executes the steps. It returns nil when every step succeeded or was
// skipped, a *StepError naming the failed step otherwise, or the context's
// error (wrapped in a *StepError) when canceled.
func (p *Pipeline) Run(ctx context.Context) error {
	backoff := p.Backoff
	if backoff == nil {
		backoff = DefaultBackoff
	}
	sleep := p.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	for i, s := range p.Steps {
		if err := ctx.Err(); err != nil {
			p.cancelRest(p.Steps[i:], err)
			return &StepError{Step: s.Name, Err: err}
		}
		if s.Skip != nil {
			if reason := s.Skip(); reason != "" {
				p.Listener.StepState(s.Name, 0, Skipped, errors.New(reason))
				continue
			}
		}
		if err := p.runStep(ctx, s, backoff, sleep); err != nil {
			if ctx.Err() != nil {
				p.cancelRest(p.Steps[i+1:], ctx.Err())
			}
			return &StepError{Step: s.Name, Err: err}
		}
	}
	return nil
}

func (p *Pipeline) runStep(ctx context.Context, s Step, backoff func(int) time.Duration, sleep Sleeper) error {
	max := max(s.MaxAttempts, 1)
	for attempt := 1; ; attempt++ {
		p.Listener.StepState(s.Name, attempt, Running, nil)
		log := &Log{step: s.Name, l: p.Listener}
		err := s.Run(ctx, log)
		log.flush()
		switch {
		case err == nil:
			p.Listener.StepState(s.Name, attempt, Succeeded, nil)
			return nil
		case ctx.Err() != nil:
			p.Listener.StepState(s.Name, attempt, Canceled, ctx.Err())
			return ctx.Err()
		case IsRetryable(err) && attempt < max:
			wait := backoff(attempt)
			p.Listener.StepState(s.Name, attempt, Retrying, err)
			p.Listener.Line(s.Name, fmt.Sprintf("attempt %d/%d failed: %v; retrying in %s", attempt, max, err, wait))
			if serr := sleep(ctx, wait); serr != nil {
				p.Listener.StepState(s.Name, attempt, Canceled, serr)
				return serr
			}
		default:
			p.Listener.StepState(s.Name, attempt, Failed, err)
			return err
		}
	}
}

func (p *Pipeline) cancelRest(steps []Step, cause error) {
	for _, s := range steps {
		p.Listener.StepState(s.Name, 0, Canceled, cause)
	}
}

// DefaultBackoff doubles from one second up to thirty.
func DefaultBackoff(attempt int) time.Duration {
	d := time.Second << min(attempt-1, 5)
	return min(d, 30*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StepError is the error of a failed pipeline: which step, and why.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// Retryable marks err as transient: the step may succeed if run again
// (registry down, network error). Unmarked errors are terminal.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryable{err}
}

// IsRetryable reports whether err, or an error it wraps, was marked with
// Retryable.
func IsRetryable(err error) bool {
	_, ok := errors.AsType[retryable](err)
	return ok
}
