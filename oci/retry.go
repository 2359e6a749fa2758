package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrUnavailable marks an error from a registry that could not be reached or
// answered with a server error until the retry deadline passed: trying again
// later may succeed. Any other registry error (authentication denied, a
// manifest refused, an unknown image) is terminal.
var ErrUnavailable = errors.New("registry unavailable")

// IsRetryable reports whether err came from an unavailable registry.
func IsRetryable(err error) bool { return errors.Is(err, ErrUnavailable) }

// Retry says how a Publisher retries while the registry is unavailable.
type Retry struct {
	// Initial is the first wait between attempts; it doubles up to Max.
	Initial, Max time.Duration
	// Deadline bounds the time spent retrying one operation; zero means a
	// single attempt.
	Deadline time.Duration
	// Notify, if set, is told of each failed attempt before the wait, so
	// that a build log can show the retries.
	Notify func(err error, attempt int, wait time.Duration)
}

// DefaultRetry waits 250ms, 500ms, … up to 5s between attempts, for at most
// a minute.
var DefaultRetry = Retry{Initial: 250 * time.Millisecond, Max: 5 * time.Second, Deadline: time.Minute}

// do runs op until it succeeds, fails for good, or the deadline passes.
func (r Retry) do(ctx context.Context, op func(context.Context) error) error {
	var deadline <-chan time.Time
	if r.Deadline > 0 {
		t := time.NewTimer(r.Deadline)
		defer t.Stop()
		deadline = t.C
	}
	wait := max(r.Initial, time.Millisecond)
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if !transient(err) {
			return err
		}
		gaveUp := fmt.Errorf("%w (%s): %w", ErrUnavailable, attempts(attempt), err)
		if deadline == nil {
			return gaveUp
		}
		select {
		case <-deadline:
			return gaveUp
		default:
		}
		if r.Notify != nil {
			r.Notify(err, attempt, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-deadline:
			t.Stop()
			return gaveUp
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		if r.Max > 0 {
			wait = min(wait*2, r.Max)
		} else {
			wait *= 2
		}
	}
}

// transient reports whether err looks like a registry that is down,
// restarting or overloaded, rather than one that refuses the request.
func transient(err error) bool {
	if te, ok := errors.AsType[*transport.Error](err); ok {
		switch te.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests:
			return true
		}
		return te.StatusCode >= 500
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The caller gave up (do checks its context before asking).
		return false
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return true
	}
	if dns, ok := errors.AsType[*net.DNSError](err); ok {
		return dns.IsTemporary || dns.IsTimeout
	}
	if isTimeout(err) {
		return true
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		return true
	}
	return false
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}
