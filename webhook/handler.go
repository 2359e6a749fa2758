package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/ferryhq/ferry"
)

// MaxBodyBytes bounds a delivery's body; a larger one is refused with 413
// before it is authenticated. GitHub lists up to 2048 commits in one push
// (a few MiB at worst); a push too large for this limit is still picked up
// by the next poll.
const MaxBodyBytes = 4 << 20

// Handler serves POST /hooks/{provider} for github, gitlab, gitea and
// generic. Mount it at "/hooks/". secretFor returns the shared secret for a
// provider (empty: that provider's deliveries are all refused). onPush is
// called with every authenticated push to a branch, and only then; it
// should queue work and return, since the sender waits (GitHub gives up
// after 10 s). An error it returns is answered with the status of its
// ferry error code.
//
// Responses are JSON: 202 {"accepted":true,"branch":…,"commit":…} for a
// push handed to onPush; 200 {"accepted":false,"ignored":reason} for pings,
// tag pushes, deleted branches and other events; {"error":…} with 401 for
// a missing or bad signature, 400 for a malformed delivery, 404 for an
// unknown provider, 405 for a method other than POST, 413 for a body over
// MaxBodyBytes.
func Handler(secretFor func(provider string) []byte, onPush func(context.Context, *Push) error, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{secretFor: secretFor, onPush: onPush, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("/hooks/{provider}", h.serve)
	mux.HandleFunc("/hooks/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{"no such webhook: want /hooks/github, /hooks/gitlab, /hooks/gitea or /hooks/generic"})
	})
	return mux
}

type handler struct {
	secretFor func(string) []byte
	onPush    func(context.Context, *Push) error
	logger    *slog.Logger
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
	log := h.logger.With("provider", provider, "remote", r.RemoteAddr)
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
	if h.secretFor != nil {
		secret = h.secretFor(provider)
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
	if err := h.onPush(r.Context(), p); err != nil {
		status := ferry.HTTPStatus(err)
		log.Error("webhook push not queued", "branch", p.Branch, "commit", p.After, "status", status, "err", err)
		writeJSON(w, status, errorBody{ferry.ErrorMessage(err)})
		return
	}
	log.Info("webhook push accepted", "branch", p.Branch, "commit", p.After, "pusher", p.Pusher)
	writeJSON(w, http.StatusAccepted, acceptedBody{Accepted: true, Provider: provider, Delivery: p.Delivery, Branch: p.Branch, Commit: p.After})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
