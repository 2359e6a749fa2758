package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ferryhq/ferry"
)

// DefaultHeartbeat is how often Follow calls Idle while nothing changes,
// when LogFollow.Heartbeat is not set.
const DefaultHeartbeat = 15 * time.Second

// LogReader is what Follow reads: a build with its steps and its log lines
// after a sequence number (a Store is one).
type LogReader interface {
	Build(ctx context.Context, id int64) (*ferry.Build, error)
	Logs(ctx context.Context, buildID, afterSeq int64, limit int) ([]ferry.LogLine, error)
}

// LogFollow says whose log Follow reads and for how long.
type LogFollow struct {
	// Build is the build whose log is read.
	Build int64
	// After is the sequence number of the last line already seen; 0 reads
	// from the first line.
	After int64
	// Live keeps reading until the build is final; without it Follow ends
	// once what is stored now was read.
	Live bool
	// Changed returns a channel closed at the next change of builds or
	// logs (the builder's broadcast); required with Live.
	Changed func() <-chan struct{}
	// Heartbeat is how often Follow calls Idle while it waits;
	// DefaultHeartbeat when 0.
	Heartbeat time.Duration
}

// A Follower is told what Follow reads, in order and from one goroutine.
// An error from any of its methods ends Follow with that error.
type Follower interface {
	// Read hears the lines read since the last call (none, or at most
	// MaxLogLimit) and the build as it stood after they were read;
	// stepsChanged says whether its steps differ from the last call's (on
	// the first call, whether it has any).
	Read(lines []ferry.LogLine, b *ferry.Build, stepsChanged bool) error
	// End hears the build once it is final and every line was read, or,
	// without Live, once what was stored was read. Follow then returns nil.
	End(b *ferry.Build) error
	// Idle is called every heartbeat while Follow waits for a change.
	Idle() error
}

// Follow reads a build's log after f.After and tells to: every line once,
// in order, each time the broadcast says something changed, until the
// build is final and drained (or, without f.Live, once). It is the one
// follow loop behind every encoder of build logs (the API's NDJSON, the
// dashboard's server-sent events). It returns ctx's error when ctx ends
// first.
//
// The broadcast's channel is taken before each read, so a change after a
// read wakes the next one. Lines are read before the build, so a line
// appended in between is not lost when the build then turns out final:
// Follow reads again until no line comes.
func Follow(ctx context.Context, l LogReader, f LogFollow, to Follower) error {
	if f.Live && f.Changed == nil {
		return fmt.Errorf("follow the log of build %d: no change broadcast", f.Build)
	}
	var tick <-chan time.Time
	if f.Live {
		every := f.Heartbeat
		if every <= 0 {
			every = DefaultHeartbeat
		}
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	after := f.After
	var steps []ferry.Step
	for {
		var changed <-chan struct{}
		if f.Live {
			changed = f.Changed()
		}
		lines, err := l.Logs(ctx, f.Build, after, MaxLogLimit)
		if err != nil {
			return fmt.Errorf("follow the log of build %d: %w", f.Build, err)
		}
		b, err := l.Build(ctx, f.Build)
		if err != nil {
			return fmt.Errorf("follow the log of build %d: %w", f.Build, err)
		}
		if len(lines) > 0 {
			after = lines[len(lines)-1].Seq
		}
		stepsChanged := !slices.Equal(steps, b.Steps)
		steps = b.Steps
		if err := to.Read(lines, b, stepsChanged); err != nil {
			return err
		}
		switch {
		case len(lines) == MaxLogLimit:
			continue // more to read at once
		case b.State.Final() && len(lines) > 0:
			continue // drain what came before it ended
		case b.State.Final() || !f.Live:
			return to.End(b)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-tick:
			if err := to.Idle(); err != nil {
				return err
			}
		}
	}
}
