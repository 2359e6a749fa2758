package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferryhq/ferry"
)

// MaxBodyBytes bounds a delivery's body; a larger one is refused with 413
// before it is authenticated. GitHub lists up to 2048 commits in one push
// (a few MiB at worst); a push too large for this limit is still picked up
// by the next poll.
const MaxBodyBytes = 4 << 20

// Config is what Handler needs.
type Config struct {
	// SecretFor returns the shared secret for a provider (empty: that
	// provider's deliveries are all refused).
	SecretFor func(provider string) []byte
	// OnPush is called with every authenticated push to a branch, and
	// only then, once per delivery id (see Deliveries). It should queue
	// work and return, since the sender waits (GitHub gives up after
	// 10 s). An error it returns is answered with the status of its ferry
	// error code.
	OnPush func(context.Context, *Push) error
	// Deliveries remembers the deliveries handed to OnPush by their id, so
	// that one sent again is answered without calling OnPush. Nil
	// remembers none.
	Deliveries Deliveries
	// Now is the clock that dates deliveries; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Deliveries remembers deliveries by the id their sender gives them
// (Push.Delivery): ferry's ledger, so that it holds across restarts and
// servers.
type Deliveries interface {
	// AddDelivery records a delivery and reports whether it is new.
	AddDelivery(ctx context.Context, provider, id string, at time.Time) (bool, error)
	// ForgetDelivery removes one, so that the sender's retry is accepted.
	ForgetDelivery(ctx context.Context, provider, id string) error
}

// AlreadyReceived is the Ignored reason of a delivery whose id was seen
// before.
const AlreadyReceived = "already received"

// Handler serves POST /hooks/{provider} for github, gitlab, gitea and
// generic. Mount it at "/hooks/".
//
// A push with a delivery id is recorded in cfg.Deliveries before OnPush
// is called; a delivery with an id already recorded (a retry, a
// redelivery, a replay) is answered 200 with "ignored": "already received"
// and OnPush is not called. When OnPush fails the delivery is forgotten
// again, so that the sender's retry is acted on. A delivery without an id
// (the generic provider without X-Ferry-Delivery) cannot be recognised and
// is handed to OnPush every time.
//
// Responses are JSON: 202 {"accepted":true,"branch":…,"commit":…} for a
// push handed to OnPush; 200 {"accepted":false,"ignored":reason} for pings,
// tag pushes, deleted branches, other events and deliveries already
// received; {"error":…} with 401 for a missing or bad signature, 400 for a
// malformed delivery, 404 for an unknown provider, 405 for a method other
// than POST, 413 for a body over MaxBodyBytes.
func Handler(cfg Config) http.Handler {
	h := &handler{Config: cfg}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hooks/{provider}", h.serve)
	mux.HandleFunc("/hooks/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{"no such webhook: want /hooks/github, /hooks/gitlab, /hooks/gitea or /hooks/generic"})
	})
	return mux
}

type handler struct {
	Config
}

type errorBody struct {
	Error string `json:"error"`
}

type acceptedBody struct {
	Accepted bool   `json:"accepted"`
	Provider string `json:"provider"`
	Delivery string `json:"delivery,omitempty"`
	Branch   string `json:"branch,omitempty"`
	Commit   string `json:"commit,omitempty"`
	Ignored  string `json:"ignored,omitempty"`
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	provider := r.PathValue("provider")
	switch provider {
	case GitHub, GitLab, Gitea, Generic:
	default:
		writeJSON(w, http.StatusNotFound, errorBody{"unknown webhook provider: want github, gitlab, gitea or generic"})
		return
	}
	log := h.Logger.With("provider", provider, "remote", r.RemoteAddr)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{"webhooks are delivered with POST"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			log.Warn("webhook refused: body too large", "limit", MaxBodyBytes)
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("webhook body is larger than %d MiB", MaxBodyBytes>>20)})
			return
		}
		writeJSON(w, http.StatusBadRequest, errorBody{"cannot read webhook body"})
		return
	}
	var secret []byte
	if h.SecretFor != nil {
		secret = h.SecretFor(provider)
	}
	p, err := Parse(provider, r.Header, body, secret)
	if err != nil {
		status := ferry.HTTPStatus(err)
		if status == http.StatusUnauthorized {
			log.Warn("webhook refused", "reason", ferry.ErrorMessage(err))
		} else {
			log.Info("webhook rejected", "status", status, "reason", ferry.ErrorMessage(err), "err", err)
		}
		writeJSON(w, status, errorBody{ferry.ErrorMessage(err)})
		return
	}
	log = log.With("event", p.Event, "delivery", p.Delivery)
	if p.Ignore != "" {
		log.Info("webhook ignored", "reason", p.Ignore, "branch", p.Branch)
		writeJSON(w, http.StatusOK, acceptedBody{Provider: provider, Delivery: p.Delivery, Branch: p.Branch, Ignored: p.Ignore})
		return
	}
	recorded, err := h.record(r.Context(), provider, p)
	if err != nil {
		status := ferry.HTTPStatus(err)
		log.Error("webhook delivery not recorded", "status", status, "err", err)
		writeJSON(w, status, errorBody{ferry.ErrorMessage(err)})
		return
	}
	if !recorded {
		log.Info("webhook already received", "branch", p.Branch, "commit", p.After)
		writeJSON(w, http.StatusOK, acceptedBody{Provider: provider, Delivery: p.Delivery, Branch: p.Branch, Commit: p.After, Ignored: AlreadyReceived})
		return
	}
	if err := h.OnPush(r.Context(), p); err != nil {
		status := ferry.HTTPStatus(err)
		log.Error("webhook push not queued", "branch", p.Branch, "commit", p.After, "status", status, "err", err)
		h.forget(r.Context(), log, provider, p)
		writeJSON(w, status, errorBody{ferry.ErrorMessage(err)})
		return
	}
	log.Info("webhook push accepted", "branch", p.Branch, "commit", p.After, "pusher", p.Pusher)
	writeJSON(w, http.StatusAccepted, acceptedBody{Accepted: true, Provider: provider, Delivery: p.Delivery, Branch: p.Branch, Commit: p.After})
}

// record records p's delivery and reports whether it is new; a delivery
// without an id, or a handler without Deliveries, is always new.
func (h *handler) record(ctx context.Context, provider string, p *Push) (bool, error) {
	if p.Delivery == "" || h.Deliveries == nil {
		return true, nil
	}
	return h.Deliveries.AddDelivery(ctx, provider, p.Delivery, h.Now())
}

// forget removes p's delivery after OnPush failed, even when the sender
// has hung up, so that its retry is acted on.
func (h *handler) forget(ctx context.Context, log *slog.Logger, provider string, p *Push) {
	if p.Delivery == "" || h.Deliveries == nil {
		return
	}
	if err := h.Deliveries.ForgetDelivery(context.WithoutCancel(ctx), provider, p.Delivery); err != nil {
		log.Error("webhook delivery not forgotten: the sender's retry will be taken as already received", "err", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
