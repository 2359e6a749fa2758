package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/leader"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/source"
	"github.com/ferryhq/ferry/webhook"
)

// standby is what a server runs while another one leads the ledger: a
// controller that never acts (it reads the environments' status), the
// HTTP parts over the unfenced ledger, and a poller that only keeps the
// git clone fresh. Reads are answered here; everything else is forwarded
// to the leader. Meanwhile it campaigns, and takes over once the leader's
// lease is resigned or runs out.
type standby struct {
	ctrl   *controller.Controller
	cancel context.CancelFunc
	poller sync.WaitGroup
}

// startStandby makes this server stand by for the leader that conflict
// names.
func (s *Server) startStandby(ctx context.Context, conflict error) error {
	if err := s.images(); err != nil {
		return err
	}
	ctrl, err := s.controller(s.raw)
	if err != nil {
		return err
	}
	sb := &standby{ctrl: ctrl}
	s.standbyMu.Lock()
	s.standby = sb
	s.standbyMu.Unlock()
	hooks, err := s.webhooks(s.raw, s.queuePush)
	if err != nil {
		return err
	}
	read, err := s.handler(httpParts{
		ledger: s.raw, ctrl: polled{ctrl}, builds: standbyBuilds{}, dora: s.doraReporter(s.raw), hooks: hooks,
	})
	if err != nil {
		return err
	}
	root := s.forwarding(read)
	s.root.Store(&root)

	pollCtx, cancel := context.WithCancel(s.runCtx)
	sb.cancel = cancel
	poller := &source.Poller{
		Repo: s.repo, Branches: s.cfg.Branches(), Interval: s.cfg.Source.Poll,
		OnHead: func(string, string) {}, // the leader acts on heads
		OnError: func(err error, attempt int, next time.Duration) {
			s.log.Warn("fetch failed; retrying", "repo", s.repo.URL(), "attempt", attempt, "retry_in", next, "err", err)
		},
	}
	sb.poller.Add(1)
	go func() {
		defer sb.poller.Done()
		poller.Run(pollCtx)
	}()
	s.goRun("standby", func() error { return s.standBy(s.runCtx) })
	s.log.Info("standing by", "holder", s.holder, "why", ferry.ErrorMessage(conflict))
	s.opts.Progress("standing by on http://" + s.Addr() + ": " + ferry.ErrorMessage(conflict))
	return nil
}

// standBy campaigns until this server leads, then takes over. It tries
// often (campaignEvery), so that the takeover follows the end of the
// leader's lease closely: a resigned lease at once, a dead leader's after
// its TTL. A freed lease it leaves to the servers that stood by longer
// for as long as yieldFor says, then campaigns at that instant.
func (s *Server) standBy(ctx context.Context) error {
	t := time.NewTimer(campaignEvery(s.opts.LeaseTTL))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		t.Reset(campaignEvery(s.opts.LeaseTTL))
		if l, err := s.raw.Leader(ctx, s.cfg.App); err == nil {
			if wait := s.yielding(l); wait > 0 {
				t.Reset(wait)
				continue
			}
		}
		lead, err := s.campaign(ctx)
		switch {
		case ferry.ErrorCode(err) == ferry.ECONFLICT:
			continue
		case err != nil:
			if ctx.Err() == nil {
				s.log.Warn("campaign for the lead; trying again", "err", err)
			}
			continue
		}
		s.log.Info("taking over", "term", lead.Term())
		if err := s.startLeading(ctx, lead); err != nil {
			s.log.Error("take over the lead", "term", lead.Term(), "err", err)
			s.stop(fmt.Errorf("take over the lead in term %d: %w", lead.Term(), err))
		}
		return nil
	}
}

// firstCampaign is Start's campaign. On a configuration that can stand
// by, a free lease this server still leaves to others (yielding) is
// answered ECONFLICT, and this server stands by too.
func (s *Server) firstCampaign(ctx context.Context) (*leader.Lead, error) {
	if len(s.cfg.RedundancyGaps()) == 0 {
		if l, err := s.raw.Leader(ctx, s.cfg.App); err == nil && s.yielding(l) > 0 {
			return nil, ferry.Errorf(ferry.ECONFLICT, "the lead of %s was given up by %s %s ago: a server that stood by longer takes it first (this one waits %s)",
				s.cfg.App, l.Holder, s.opts.Now().Sub(l.ExpiresAt).Round(time.Millisecond), yieldFor(l.ExpiresAt.Sub(s.began), s.opts.LeaseTTL).Round(time.Millisecond))
		}
	}
	return s.campaign(ctx)
}

// yielding is how much longer this server leaves the lease l to the
// servers that stood by before it: nothing for a live lease (the
// campaign decides) or its own previous run's, else until yieldFor after
// l ran out.
func (s *Server) yielding(l *ledger.Lease) time.Duration {
	now := s.opts.Now()
	if l.Live(now) || strings.HasPrefix(l.Holder, identity(s.cfg.DataDir)+"#") {
		return 0
	}
	return max(l.ExpiresAt.Add(yieldFor(l.ExpiresAt.Sub(s.began), s.opts.LeaseTTL)).Sub(now), 0)
}

// yieldFor is how long after a lease ran out a server that had stood by
// for stood waits before campaigning for it: handoverWait for one that
// began as the lease ran out (or after), nothing for one that stood by a
// TTL or more, in proportion between. The longer a server stood by, the
// sooner it campaigns, so a warm standby precedes the replacement of the
// server that gave the lead up, started while that one stopped
// (deploy/ferry: a deleted leader pod and its replacement), and the
// earliest of several young servers wins, not a random one.
func yieldFor(stood, ttl time.Duration) time.Duration {
	stood = min(max(stood, 0), ttl)
	return time.Duration(float64(handoverWait(ttl)) * float64(ttl-stood) / float64(ttl))
}

// handoverWait is the longest a server yields a freed lease: two of a
// standby's campaigns, so that a standby that stood by a TTL has had one
// to take it first.
func handoverWait(ttl time.Duration) time.Duration { return 2 * campaignEvery(ttl) }

// every calls fn every d until it returns true or ctx ends.
func every(ctx context.Context, d time.Duration, fn func() (done bool)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if fn() {
			return
		}
	}
}

// campaignEvery is how often a standby asks for the lead: a fifteenth of
// the TTL (two thirds of a second by default), at least 50 ms.
func campaignEvery(ttl time.Duration) time.Duration {
	return max(ttl/15, 50*time.Millisecond)
}

// stopStandby lets the standby's parts go, if this server stood by: its
// poller, and its controller's runtimes. Its handler has been replaced.
func (s *Server) stopStandby() {
	s.standbyMu.Lock()
	sb := s.standby
	s.standby = nil
	s.standbyMu.Unlock()
	if sb == nil {
		return
	}
	if sb.cancel != nil {
		sb.cancel()
	}
	sb.poller.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sb.ctrl.Close(ctx); err != nil {
		s.log.Warn("close the standby's runtimes", "err", err)
	}
}

// forwarding answers reads with read and forwards every other request to
// the leader, at the address its lease names. A webhook the leader cannot
// take now is queued in the ledger (queuePush); any other request gets 503
// naming the leader.
func (s *Server) forwarding(read http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			read.ServeHTTP(w, r)
			return
		}
		hook := strings.HasPrefix(r.URL.Path, "/hooks/")
		var body []byte
		if hook {
			// Kept, to be queued here if the leader does not take it.
			var err error
			if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, webhook.MaxBodyBytes)); err != nil {
				writeError(w, ferry.Errorf(ferry.ETOOLARGE, "webhook body over %d bytes", webhook.MaxBodyBytes))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		l, err := s.raw.Leader(r.Context(), s.cfg.App)
		if err != nil || l.Address == "" || l.Holder == s.holder {
			s.noLeader(w, r, read, body, l)
			return
		}
		proxy := &httputil.ReverseProxy{
			Transport: toLeader,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(&url.URL{Scheme: "http", Host: l.Address})
				pr.Out.Host = pr.In.Host // the leader checks origins against it
				pr.SetXForwarded()
			},
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				s.log.Warn("forward to the leader", "leader", l.Holder, "address", l.Address, "method", r.Method, "path", r.URL.Path, "err", err)
				s.noLeader(w, r, read, body, l)
			},
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go s.whileLeads(ctx, l, cancel)
		proxy.ServeHTTP(w, r.WithContext(ctx))
	})
}

// whileLeads calls gone as soon as l is no longer the live lease: a
// request forwarded to a leader that was paused or cut off then ends with
// the lease (503, to be tried again, at the next leader) instead of
// waiting out the transport's timeout.
func (s *Server) whileLeads(ctx context.Context, l *ledger.Lease, gone func()) {
	every(ctx, campaignEvery(s.opts.LeaseTTL), func() bool {
		now, err := s.raw.Leader(ctx, s.cfg.App)
		if ctx.Err() != nil {
			return true
		}
		if err != nil || now.Holder != l.Holder || now.Term != l.Term || !now.ExpiresAt.After(s.opts.Now()) {
			gone()
			return true
		}
		return false
	})
}

// toLeader carries forwarded requests. A leader that is paused or cut off
// accepts connections (the kernel does) but answers nothing: the timeouts
// turn that into a refusal the client can retry, instead of a hang.
var toLeader = &http.Transport{
	DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	ResponseHeaderTimeout: 30 * time.Second,
	MaxIdleConnsPerHost:   16,
	IdleConnTimeout:       time.Minute,
}

// noLeader answers a request the leader could not take: a webhook is
// handled here (its push queued), anything else is refused with where
// the leader is, to be tried again.
func (s *Server) noLeader(w http.ResponseWriter, r *http.Request, read http.Handler, hookBody []byte, l *ledger.Lease) {
	if hookBody != nil {
		r.Body = io.NopCloser(bytes.NewReader(hookBody))
		read.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "1")
	if l == nil || l.Holder == s.holder {
		writeError(w, ferry.Errorf(ferry.EUNAVAILABLE, "no ferry server leads %s now; this one stands by and takes over within a lease (%s); try again", s.cfg.App, s.opts.LeaseTTL))
		return
	}
	writeError(w, ferry.Errorf(ferry.EUNAVAILABLE, "this ferry server stands by, and the leader %s (term %d) does not answer at %s; try again, or there", l.Holder, l.Term, l.Address))
}

// queuePush is a standby's answer to a verified push the leader could not
// take: it is recorded as a webhook.queued event, which the leader takes
// (takeQueuedPushes), as does the next leader, whose first poll fetches
// anyway.
func (s *Server) queuePush(ctx context.Context, p *webhook.Push) error {
	kind, msg := "webhook.queued", fmt.Sprintf("%s push to %s: %s by %s, queued by a standby: the leader did not answer", p.Provider, p.Branch, ferry.ShortSHA(p.After), p.Pusher)
	if !slices.Contains(s.cfg.Branches(), p.Branch) {
		kind, msg = "webhook.ignored", fmt.Sprintf("%s push to %s: no environment follows this branch", p.Provider, p.Branch)
	}
	e := &ferry.Event{Time: s.opts.Now(), Actor: "ferry", Kind: kind, App: s.cfg.App, Commit: p.After, Message: msg}
	if err := s.raw.AddEvent(ctx, e); err != nil {
		return fmt.Errorf("queue the push: %w", err)
	}
	return nil
}

// takeQueuedPushes makes the leader's poller fetch whenever a standby has
// queued a push since the last look.
func (s *Server) takeQueuedPushes(ctx context.Context) {
	newest := func() int64 {
		es, err := s.ledger.Events(ctx, ledger.EventFilter{App: s.cfg.App, Kind: "webhook.queued", Limit: 1})
		if err != nil || len(es) == 0 {
			return 0
		}
		return es[0].ID
	}
	seen := newest()
	every(ctx, time.Second, func() bool {
		if id := newest(); id > seen {
			seen = id
			s.poller.Trigger()
		}
		return false
	})
}

// advertised is where other servers reach this one's API: the configured
// address, else the listener's, a wildcard host replaced by this machine's
// first non-loopback address (a pod's IP).
func advertised(configured string, ln net.Addr) string {
	if configured != "" {
		return configured
	}
	tcp, ok := ln.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return ln.String()
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && !ip.IP.IsLoopback() && ip.IP.To4() != nil {
			return net.JoinHostPort(ip.IP.String(), fmt.Sprint(tcp.Port))
		}
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
}

// polled is a standby's controller: it does not act, so it hears of no
// change; the leader's are read from the ledger every second.
type polled struct{ *controller.Controller }

func (polled) Changed() <-chan struct{} { return inASecond() }

// standbyBuilds is a standby's builder: it builds nothing (requests that
// would are forwarded to the leader) and sees the leader's builds in the
// ledger every second.
type standbyBuilds struct{}

var errStandby = ferry.Errorf(ferry.EUNAVAILABLE, "this ferry server stands by: the leader builds; ask it")

func (standbyBuilds) Trigger(context.Context, string, string, string) (*ferry.Build, bool, error) {
	return nil, false, errStandby
}

func (standbyBuilds) Cancel(context.Context, int64, string, string) error { return errStandby }

func (standbyBuilds) Changed() <-chan struct{} { return inASecond() }

// inASecond returns a channel closed a second from now.
func inASecond() <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(time.Second, func() { close(ch) })
	return ch
}

// writeError answers err as the API does.
func writeError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ferry.HTTPStatus(err))
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: ferry.ErrorMessage(err), Code: ferry.ErrorCode(err)})
}
