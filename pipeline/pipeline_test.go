package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Listener that keeps what it hears.
type recorder struct {
	mu     sync.Mutex
	events []string
	lines  []string
}

func (r *recorder) StepState(name string, attempt int, s State, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s#%d:%s", name, attempt, s))
}

func (r *recorder) Line(step, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, step+": "+text)
}

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func ok(context.Context, *Log) error { return nil }

func TestRun(t *testing.T) {
	errBoom := errors.New("boom")
	flaky := func(failures int) func(context.Context, *Log) error {
		n := 0
		return func(context.Context, *Log) error {
			n++
			if n <= failures {
				return Retryable(fmt.Errorf("registry down (call %d)", n))
			}
			return nil
		}
	}
	tests := []struct {
		name       string
		steps      []Step
		wantErr    string // substring; "" means success
		wantStep   string
		wantEvents []string
	}{
		{
			name:       "all succeed in order",
			steps:      []Step{{Name: "test", Run: ok}, {Name: "build", Run: ok}},
			wantEvents: []string{"test#1:running", "test#1:succeeded", "build#1:running", "build#1:succeeded"},
		},
		{
			name: "terminal error stops the pipeline",
			steps: []Step{
				{Name: "test", Run: func(context.Context, *Log) error { return errBoom }, MaxAttempts: 3},
				{Name: "build", Run: ok},
			},
			wantErr:    "step test: boom",
			wantStep:   "test",
			wantEvents: []string{"test#1:running", "test#1:failed"},
		},
		{
			name:  "retryable error is retried until success",
			steps: []Step{{Name: "push", Run: flaky(2), MaxAttempts: 3}},
			wantEvents: []string{
				"push#1:running", "push#1:retrying",
				"push#2:running", "push#2:retrying",
				"push#3:running", "push#3:succeeded",
			},
		},
		{
			name:     "retryable error fails after max attempts",
			steps:    []Step{{Name: "push", Run: flaky(5), MaxAttempts: 2}},
			wantErr:  "registry down (call 2)",
			wantStep: "push",
			wantEvents: []string{
				"push#1:running", "push#1:retrying", "push#2:running", "push#2:failed",
			},
		},
		{
			name: "skip",
			steps: []Step{
				{Name: "test", Run: ok, Skip: func() string { return "no test command" }},
				{Name: "build", Run: ok},
			},
			wantEvents: []string{"test#0:skipped", "build#1:running", "build#1:succeeded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			p := &Pipeline{Steps: tt.steps, Listener: rec, Sleep: noSleep}
			err := p.Run(context.Background())
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Run() = %v, want nil", err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Run() = %v, want error containing %q", err, tt.wantErr)
				}
				se, ok := errors.AsType[*StepError](err)
				if !ok || se.Step != tt.wantStep {
					t.Fatalf("Run() error step = %v, want %q", err, tt.wantStep)
				}
			}
			if !slices.Equal(rec.events, tt.wantEvents) {
				t.Errorf("events = %v, want %v", rec.events, tt.wantEvents)
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	p := &Pipeline{Listener: rec, Sleep: noSleep, Steps: []Step{
		{Name: "test", Run: func(ctx context.Context, _ *Log) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}},
		{Name: "build", Run: ok},
	}}
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	<-started
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run() = %v, want context.Canceled", err)
	}
	want := []string{"test#1:running", "test#1:canceled", "build#0:canceled"}
	if !slices.Equal(rec.events, want) {
		t.Errorf("events = %v, want %v", rec.events, want)
	}
}

func TestLogSplitsLines(t *testing.T) {
	rec := &recorder{}
	p := &Pipeline{Listener: rec, Steps: []Step{{Name: "test", Run: func(_ context.Context, l *Log) error {
		fmt.Fprint(l, "ok  \tpkg/a 0.1s\nFAIL")
		fmt.Fprint(l, "\tpkg/b\r\n")
		l.Printf("exit %d", 1)
		fmt.Fprint(l, "no newline at end")
		return nil
	}}}}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"test: ok  \tpkg/a 0.1s", "test: FAIL\tpkg/b", "test: exit 1", "test: no newline at end"}
	if !slices.Equal(rec.lines, want) {
		t.Errorf("lines = %q, want %q", rec.lines, want)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		if got := DefaultBackoff(attempt); got != want {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", attempt, got, want)
		}
	}
}
