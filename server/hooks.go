package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/webhook"
)

// webhooks returns the /hooks/{provider} handler, which records deliveries
// in store and hands each verified push to onPush.
func (s *Server) webhooks(store ledger.Store, onPush func(context.Context, *webhook.Push) error) (http.Handler, error) {
	var secret []byte
	if !s.cfg.Source.WebhookSecret.IsZero() {
		v, err := s.cfg.Source.WebhookSecret.Resolve(s.opts.Getenv, s.opts.ReadFile)
		if err != nil {
			return nil, fmt.Errorf("source.webhookSecret: %w", err)
		}
		secret = []byte(v)
	}
	return webhook.Handler(webhook.Config{
		SecretFor:  func(string) []byte { return secret },
		OnPush:     onPush,
		Deliveries: store, // a delivery sent again is recognised, across restarts and servers
		Now:        s.opts.Now,
		Logger:     s.log.With("part", "webhook"),
	}), nil
}

// onPush is the leader's answer to a verified push: a push to a built
// branch makes the poller fetch at once; the fetched head is then queued
// like any polled one, so a webhook can never queue a commit git does not
// have.
func (s *Server) onPush(ctx context.Context, p *webhook.Push) error {
	if !slices.Contains(s.cfg.Branches(), p.Branch) {
		s.event(ctx, "webhook.ignored", fmt.Sprintf("%s push to %s: no environment follows this branch", p.Provider, p.Branch), "")
		return nil
	}
	s.event(ctx, "webhook.push", fmt.Sprintf("%s push to %s: %s by %s", p.Provider, p.Branch, ferry.ShortSHA(p.After), p.Pusher), "")
	s.hooked.mark(p.Branch, p.After, "webhook:"+p.Provider)
	s.poller.Trigger()
	return nil
}

// hookTriggers remembers which webhook announced a branch's head, so that
// the build the poll then queues is recorded as triggered by it.
type hookTriggers struct {
	mu    sync.Mutex
	heads map[string][2]string // branch → {commit, trigger}
}

func (h *hookTriggers) mark(branch, commit, trigger string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.heads == nil {
		h.heads = make(map[string][2]string)
	}
	h.heads[branch] = [2]string{commit, trigger}
}

// take returns the trigger of branch's head commit: the webhook that
// announced exactly that commit, or "poll".
func (h *hookTriggers) take(branch, commit string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m, ok := h.heads[branch]; ok && m[0] == commit {
		delete(h.heads, branch)
		return m[1]
	}
	return "poll"
}
