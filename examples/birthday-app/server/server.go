// Package server serves birthday-app over HTTP: the hello API, the probes
// (/statusz readiness, /healthz liveness), /version and Prometheus
// /metrics, with a request id, a JSON access log line and metrics for
// every request, a request body limit, server timeouts, and a graceful
// shutdown that reports "not ready" first and finishes the requests in
// flight.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo"
)

// MaxBodyBytes is the largest request body accepted; larger ones get 413.
// A valid body, {"dateOfBirth":"YYYY-MM-DD"}, is under 40 bytes.
const MaxBodyBytes = 1 << 10

// Pinger checks the database for the readiness probe.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config is what a Server needs. Zero durations take the defaults shown.
type Config struct {
	Service *birthday.Service
	Pinger  Pinger
	Logger  *slog.Logger
	Build   buildinfo.Info
	// NewRequestID makes an id for a request without a usable
	// X-Request-Id header. The default is a random prefix drawn once per
	// process and a counter ("K3J5QX2MZT4B-1f"): unique across replicas
	// without a system call per request.
	NewRequestID func() string

	StoreTimeout    time.Duration // each API request's database work: 5 s
	PingTimeout     time.Duration // the readiness probe's ping: 1 s
	ShutdownDelay   time.Duration // reporting not-ready before closing the listener: 0
	ShutdownTimeout time.Duration // waiting for requests in flight: 20 s

	ReadHeaderTimeout time.Duration // 5 s
	ReadTimeout       time.Duration // the whole request, body included: 10 s
	WriteTimeout      time.Duration // 15 s
	IdleTimeout       time.Duration // keep-alive connections: 2 min
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.StoreTimeout, 5*time.Second)
	def(&c.PingTimeout, time.Second)
	def(&c.ShutdownTimeout, 20*time.Second)
	def(&c.ReadHeaderTimeout, 5*time.Second)
	def(&c.ReadTimeout, 10*time.Second)
	def(&c.WriteTimeout, 15*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NewRequestID == nil {
		c.NewRequestID = requestIDs()
	}
}

// Server is birthday-app's HTTP server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics
	handler  http.Handler
	draining atomic.Bool
}

// New returns a server for cfg. cfg.Service and cfg.Pinger are required.
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.registry, s.metrics = newMetrics(cfg.Build)
	s.handler = s.requestID(s.observe(s.routes()))
	return s
}

// Handler serves every route with the request id, logging, metrics,
// panic recovery and the body limit applied.
func (s *Server) Handler() http.Handler { return s.handler }

// Registry holds the server's metrics (no process-wide globals).
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Drain makes /statusz report 503 from now on. Serve calls it when its
// context ends.
func (s *Server) Drain() { s.draining.Store(true) }

// Serve serves on ln until ctx ends, then shuts down gracefully: /statusz
// turns 503 at once, new requests are still served for ShutdownDelay (so
// load balancers notice), then the listener closes and requests in flight
// get up to ShutdownTimeout to finish. It returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	s.Drain()
	s.log.Info("shutdown started: reporting not ready",
		"shutdown_delay", s.cfg.ShutdownDelay.String(), "shutdown_timeout", s.cfg.ShutdownTimeout.String())
	if s.cfg.ShutdownDelay > 0 {
		t := time.NewTimer(s.cfg.ShutdownDelay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return fmt.Errorf("serve: %w", err)
		}
	}
	s.log.Info("closing the listener and waiting for requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: requests still in flight after %s: %w", s.cfg.ShutdownTimeout, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("shutdown complete")
	return nil
}

// requestIDs returns a generator of ids: a random prefix and a counter.
func requestIDs() func() string {
	prefix := rand.Text()[:12] + "-"
	var n atomic.Uint64
	return func() string { return prefix + strconv.FormatUint(n.Add(1), 36) }
}
