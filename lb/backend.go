package lb

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"time"
)

// backend is one replica behind the balancer. Proxied requests go over its
// own pool of connections; readiness checks over their own Transport. Each
// can be closed without touching the other backends'.
type backend struct {
	lb       *Balancer
	track    string
	id, addr string
	idHeader []string // []string{id}, shared read-only
	checkURL string
	pool     connPool
	checks   *http.Transport

	inflight atomic.Int64
	served   atomic.Uint64
	stats    stats
	removed  atomic.Bool
	drained  chan struct{} // cap 1: inflight reached 0 after removal
	kick     chan struct{} // cap 1: check now
	ctx      context.Context
	stop     context.CancelFunc // ends the checker and its probe

	// Guarded by lb.mu.
	ready   bool
	fails   int
	lastErr string
	readyCh chan struct{} // closed when the backend becomes ready
	gone    chan struct{} // closed by Remove
}

func (b *Balancer) newBackend(track, id, addr string) *backend {
	var protos http.Protocols
	protos.SetHTTP1(true)
	t := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     idleConnTimeout,
		DisableCompression:  true,
		Protocols:           &protos,
	}
	ctx, cancel := context.WithCancel(context.Background())
	be := &backend{
		lb:       b,
		track:    track,
		id:       id,
		addr:     addr,
		idHeader: []string{id},
		checkURL: "http://" + addr + b.cfg.Readiness,
		checks:   t,
		drained:  make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		ctx:      ctx,
		stop:     cancel,
		readyCh:  make(chan struct{}),
		gone:     make(chan struct{}),
	}
	return be
}

// closeConns closes be's idle connections, and those that become idle
// later: be takes no more requests. The readiness checks' Transport
// remembers CloseIdleConnections until it is asked for a new connection, and
// nothing asks any more once the checker stopped.
func (be *backend) closeConns() {
	be.pool.closeIdle(true)
	be.checks.CloseIdleConnections()
}

// done lowers the in-flight count and wakes a draining Remove.
func (be *backend) done() {
	if be.inflight.Add(-1) == 0 && be.removed.Load() {
		select {
		case be.drained <- struct{}{}:
		default:
		}
	}
}

// Add registers a backend at addr (host:port) and starts checking it; it
// receives traffic only once ready. Adding an id that is already registered
// (and not being removed) does nothing; a different address for it is logged.
// The backend is in DefaultTrack (see AddTo).
func (b *Balancer) Add(id, addr string) {
	b.add(DefaultTrack, id, addr)
}

func (b *Balancer) add(track, id, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.log.Warn("lb add after close", "replica", id)
		return
	}
	if old := b.backends[id]; old != nil && !old.removed.Load() {
		if old.addr != addr {
			b.log.Warn("lb add: replica id already registered; ignored", "replica", id, "addr", old.addr, "ignored", addr)
		}
		return
	}
	be := b.newBackend(track, id, addr)
	b.backends[id] = be
	b.wg.Add(1)
	go b.check(be)
	b.log.Debug("lb replica added", "replica", id, "addr", addr, "track", track)
}

// WaitReady blocks until backend id passed a readiness check, ctx ends, or the
// backend is removed. It returns nil at once if the backend is ready now.
func (b *Balancer) WaitReady(ctx context.Context, id string) error {
	for {
		b.mu.Lock()
		be := b.backends[id]
		if be == nil {
			b.mu.Unlock()
			return fmt.Errorf("wait ready %s: %w", id, ErrUnknownBackend)
		}
		if be.ready {
			b.mu.Unlock()
			return nil
		}
		readyCh, gone := be.readyCh, be.gone
		b.mu.Unlock()
		select {
		case <-readyCh:
		case <-gone:
			return fmt.Errorf("wait ready %s: %w", id, ErrRemoved)
		case <-ctx.Done():
			b.mu.Lock()
			last := be.lastErr
			b.mu.Unlock()
			if last != "" {
				return fmt.Errorf("wait ready %s: %w (last check: %s)", id, ctx.Err(), last)
			}
			return fmt.Errorf("wait ready %s: %w", id, ctx.Err())
		}
	}
}

// Remove stops routing new requests to backend id at once, then waits until
// its in-flight requests are done (bounded by DrainTimeout and ctx), closes
// the idle connections to it and forgets it. The backend is forgotten even
// when Remove returns an error (ErrDrainTimeout or ctx's error, with requests
// still in flight); removing an unknown id returns ErrUnknownBackend, and
// removing one that is already being removed returns ErrRemoved.
func (b *Balancer) Remove(ctx context.Context, id string) error {
	b.mu.Lock()
	be := b.backends[id]
	if be == nil {
		b.mu.Unlock()
		return fmt.Errorf("remove %s: %w", id, ErrUnknownBackend)
	}
	if be.removed.Load() {
		b.mu.Unlock()
		return fmt.Errorf("remove %s: %w", id, ErrRemoved)
	}
	be.removed.Store(true)
	wasReady := be.ready
	be.ready = false
	close(be.gone)
	if wasReady {
		b.rebuild()
	}
	b.mu.Unlock()
	be.stop()

	var err error
	timer := time.NewTimer(b.cfg.DrainTimeout)
	defer timer.Stop()
	for err == nil && be.inflight.Load() > 0 {
		select {
		case <-be.drained:
		case <-timer.C:
			err = fmt.Errorf("remove %s: %w after %v with %d requests in flight",
				id, ErrDrainTimeout, b.cfg.DrainTimeout, be.inflight.Load())
		case <-ctx.Done():
			err = fmt.Errorf("remove %s: %w with %d requests in flight", id, ctx.Err(), be.inflight.Load())
		}
	}
	// Connections that become idle from now on are closed too.
	be.closeConns()

	b.mu.Lock()
	if b.backends[id] == be {
		delete(b.backends, id)
	}
	b.retire(be)
	b.mu.Unlock()
	b.log.Debug("lb replica removed", "replica", id, "served", be.served.Load(), "err", err)
	return err
}

// BackendStatus describes one backend.
type BackendStatus struct {
	ID, Addr  string
	Track     string
	Ready     bool
	Draining  bool // removed, waiting for in-flight requests
	InFlight  int64
	Served    uint64 // responses received from it
	LastError string // most recent failed check or connection, kept after recovery
}

// Backends returns the registered backends sorted by ID, including those
// still draining.
func (b *Balancer) Backends() []BackendStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]BackendStatus, 0, len(b.backends))
	for _, be := range b.backends {
		out = append(out, BackendStatus{
			ID:        be.id,
			Addr:      be.addr,
			Track:     be.track,
			Ready:     be.ready,
			Draining:  be.removed.Load(),
			InFlight:  be.inflight.Load(),
			Served:    be.served.Load(),
			LastError: be.lastErr,
		})
	}
	slices.SortFunc(out, func(x, y BackendStatus) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

// ReadyCount returns how many backends receive traffic.
func (b *Balancer) ReadyCount() int {
	return len(*b.ready.Load())
}

// rebuild publishes a new routing table. b.mu must be held.
func (b *Balancer) rebuild() {
	list := make([]*backend, 0, len(b.backends))
	for _, be := range b.backends {
		if be.ready && !be.removed.Load() {
			list = append(list, be)
		}
	}
	slices.SortFunc(list, func(x, y *backend) int { return cmp.Compare(x.id, y.id) })
	b.ready.Store(&list)
	rt, starved := buildRoutes(list, b.weights)
	b.routes.Store(rt)
	if !slices.Equal(starved, b.starved) {
		if len(starved) > 0 {
			b.log.Warn("lb: weighted tracks have no ready replica; their share goes to the default track", "tracks", starved)
		} else if len(b.starved) > 0 {
			b.log.Info("lb: every weighted track has a ready replica again")
		}
		b.starved = starved
	}
}

// check runs the active readiness checks of be until it is removed or the
// balancer closes: at once, then every CheckInterval, and whenever a proxied
// request failed to connect. After each it closes the connections to be that
// have been idle too long.
func (b *Balancer) check(be *backend) {
	defer b.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-be.ctx.Done():
			return
		case <-t.C:
		case <-be.kick:
		}
		err := b.probe(be)
		if be.ctx.Err() != nil {
			return
		}
		b.record(be, err)
		be.pool.closeExpired(time.Now())
		t.Reset(b.cfg.CheckInterval)
	}
}

// probe sends one readiness check.
func (b *Balancer) probe(be *backend) error {
	ctx, cancel := context.WithTimeout(be.ctx, b.cfg.CheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, be.checkURL, nil)
	if err != nil {
		return fmt.Errorf("readiness check: %w", err)
	}
	req.Header.Set("User-Agent", "ferry-lb-check")
	res, err := be.checks.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("readiness check: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("readiness check: GET %s: status %d", b.cfg.Readiness, res.StatusCode)
	}
	return nil
}

// record applies one check result to be's readiness.
func (b *Balancer) record(be *backend, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if be.removed.Load() {
		return
	}
	if err == nil {
		be.fails = 0
		if !be.ready {
			be.ready = true
			close(be.readyCh)
			b.rebuild()
			b.log.Info("lb replica ready", "replica", be.id, "addr", be.addr)
		}
		return
	}
	be.fails++
	be.lastErr = err.Error()
	if be.ready && be.fails >= b.cfg.FailThreshold {
		b.setNotReady(be)
		b.log.Warn("lb replica not ready", "replica", be.id, "fails", be.fails, "err", err)
	}
}

// markFailed takes be out of rotation after a proxied request failed to
// connect to it, and has it re-checked at once.
func (b *Balancer) markFailed(be *backend, err error) {
	b.mu.Lock()
	if !be.removed.Load() {
		be.lastErr = err.Error()
		if be.ready {
			be.fails = b.cfg.FailThreshold
			b.setNotReady(be)
			b.log.Warn("lb replica failed a request; re-checking", "replica", be.id, "err", err)
		}
	}
	b.mu.Unlock()
	select {
	case be.kick <- struct{}{}:
	default:
	}
}

// setNotReady takes be out of rotation. b.mu must be held.
func (b *Balancer) setNotReady(be *backend) {
	be.ready = false
	be.readyCh = make(chan struct{})
	b.rebuild()
}
