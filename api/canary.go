package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/controller"
)

// Canaries is what the API asks of the controller for a running canary
// (`ferry rollout`). Its commands act at once on the canary the
// environment's loop runs: they are not queued actions, since the canary
// holds the environment's turn until it ends.
type Canaries interface {
	Canary(ctx context.Context, env string) (controller.CanaryStatus, error)
	CanaryPause(ctx context.Context, env, actor, reason string) error
	CanaryResume(ctx context.Context, env, actor, reason string) error
	CanaryAbort(ctx context.Context, env, actor, reason string) error
	CanaryPromote(ctx context.Context, env, actor, reason string) error
}

// CanaryBody is the body of GET /api/v1/envs/{env}/rollout and the answer
// of its commands: the running canary (or the last one), this step's
// figures per track and the last verdict.
type CanaryBody struct {
	Env string `json:"env"`
	// Active is set while the canary runs or is paused.
	Active bool `json:"active"`
	// Canary is absent when the environment never had one.
	Canary *ferry.CanaryRun `json:"canary,omitempty"`
	// StepFor is the current step's least duration, in seconds.
	StepFor float64 `json:"stepFor"`
	// Tracks are this step's figures, stable, canary then baseline; empty
	// before the first judgement of the step and once the canary ended.
	Tracks  []CanaryTrack  `json:"tracks"`
	Verdict *CanaryVerdict `json:"verdict,omitempty"`
}

// CanaryTrack is one track's figures over the current step.
type CanaryTrack struct {
	Track    string `json:"track"`
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	// Rate is requests per second over the step so far.
	Rate      float64 `json:"rate"`
	ErrorRate float64 `json:"errorRate"`
	// P50 and P99 are latencies in milliseconds.
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// CanaryVerdict is the last judgement: pass, fail or inconclusive, with
// the reasons of the last two.
type CanaryVerdict struct {
	Outcome string   `json:"outcome"`
	Reasons []string `json:"reasons"`
}

// CanaryBodyOf is the wire form of a canary's status (also what `ferry
// rollout status -o json` prints).
func CanaryBodyOf(env string, st controller.CanaryStatus) CanaryBody {
	b := CanaryBody{Env: env, Active: st.Active, Canary: st.Run, StepFor: st.StepFor.Seconds(), Tracks: []CanaryTrack{}}
	for _, track := range []string{ferry.TrackStable, ferry.TrackCanary, ferry.TrackBaseline} {
		f, ok := st.Tracks[track]
		if !ok {
			continue
		}
		t := CanaryTrack{Track: track, Requests: f.Requests, Errors: f.Errors,
			P50: ms(f.Latency.Quantile(0.5)), P99: ms(f.Latency.Quantile(0.99))}
		if f.Requests > 0 {
			t.ErrorRate = float64(f.Errors) / float64(f.Requests)
		}
		if st.Span > 0 {
			t.Rate = float64(f.Requests) / st.Span.Seconds()
		}
		b.Tracks = append(b.Tracks, t)
	}
	if v := st.Verdict; v != nil {
		b.Verdict = &CanaryVerdict{Outcome: string(v.Outcome), Reasons: slices.Clone(v.Reasons)}
		if b.Verdict.Reasons == nil {
			b.Verdict.Reasons = []string{}
		}
	}
	return b
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s *Server) canaryStatus(w http.ResponseWriter, r *http.Request) {
	env := r.PathValue("env")
	st, err := s.Canaries.Canary(r.Context(), env)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, CanaryBodyOf(env, st))
}

// canaryCommand serves POST /api/v1/envs/{env}/rollout/{kind} (pause,
// resume, abort, promote): the command, then the canary as it is after it.
func (s *Server) canaryCommand(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req ReasonRequest
		if err := decodeOptional(w, r, &req); err != nil {
			s.error(w, r, err)
			return
		}
		do := map[string]func(ctx context.Context, env, actor, reason string) error{
			"pause": s.Canaries.CanaryPause, "resume": s.Canaries.CanaryResume,
			"abort": s.Canaries.CanaryAbort, "promote": s.Canaries.CanaryPromote,
		}[kind]
		if err := do(r.Context(), r.PathValue("env"), actor(r), req.Reason); err != nil {
			s.error(w, r, err)
			return
		}
		s.canaryStatus(w, r)
	}
}
