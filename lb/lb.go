// Package lb is the HTTP load balancer that the local runtime puts on an
// environment's listen address, in front of that environment's replicas.
//
// Traffic goes round robin to the READY backends only, of the track that
// the weights choose for each request (SetWeights; the default track when
// none are set), and each track's figures are counted (Figures). A backend becomes ready
// after one successful readiness check (GET Config.Readiness answering 2xx)
// and stops being ready after Config.FailThreshold failed checks in a row, or
// at once when a proxied request fails to connect to it (passive health); it
// is then re-checked immediately and every Config.CheckInterval.
//
// Retry rule. A request whose attempt fails before any response byte arrived
// is retried on another ready backend, at most once per ready backend, when
//   - the connection could not be made at all (dial error, connection
//     refused): the backend never saw the request, so any method is retried;
//   - or the connection failed after the request may have been sent (reset,
//     EOF before the response) and the request is idempotent: GET, HEAD,
//     OPTIONS, TRACE, PUT, DELETE, or any request carrying an Idempotency-Key
//     or X-Idempotency-Key header (the same rule as net/http).
//
// In both cases the request body must be replayable: no body, or no byte of it
// read yet, or — for idempotent requests — a body of at most MaxReplayBody
// bytes, which is recorded while it streams to the first backend (never
// buffered ahead). Anything else, such as a POST that may have reached the
// backend, is answered 502 with a JSON body and not retried. A request whose
// client has gone away is never retried.
//
// A kept-alive backend connection that fails before any response byte (the
// backend closed it while it was idle) is not held against the backend: a
// request the rule above allows is sent again on a new connection to the
// same backend first. A request the rule does not allow is never sent on an
// idle connection that is seen (without waiting) to be closed.
//
// Remove takes a backend out of rotation at once, waits for its in-flight
// requests (bounded by Config.DrainTimeout and the context), then closes the
// idle connections to it, so that the replica's own graceful shutdown does not
// wait on connections the balancer dialled but never used.
//
// Forwarding. Each backend has its own pool of kept-alive HTTP/1.1
// connections (at most 256 idle, each kept 90 s). The request is written and
// the response read on the goroutine that serves the client: no hand-off to a
// connection's read or write loop. Only a request body of unknown length or
// over 64 KiB is written from its own goroutine, since the backend may
// answer before it has read it (or while it streams). Streamed responses
// (no Content-Length, or text/event-stream) are flushed to the client after
// every read; 1xx responses are passed on (a backend's 100 Continue is not:
// the front server answers the client's Expect itself when the body is
// first read); a 101 answer to an upgrade request joins the two
// connections. A client that goes away ends the exchange with the backend.
//
// Responses carry an X-Ferry-Replica header naming the backend that served
// them. Requests carry X-Forwarded-For and X-Forwarded-Proto set by the
// balancer; the inbound Host header is kept. The X-Forwarded-* and Forwarded
// headers a client sends are dropped, unless Config.TrustForwarded says every
// client is a proxy whose word is trusted (see there).
//
// Framing. The balancer serves its clients with its own HTTP/1.1 server
// (front.go, frontreq.go, frontres.go): one goroutine per connection, the
// request head parsed strictly into reused structures, pipelined requests
// served in order. It refuses what could be read two ways (see
// frontreq.go): two different Content-Lengths, Content-Length beside
// Transfer-Encoding, a Transfer-Encoding other than one "chunked" (501),
// obsolete line folding, a bare CR or other control byte in a header, an
// invalid chunk size or chunk line; Transfer-Encoding on HTTP/1.0 is
// ignored and the connection closed after the response. A request body that
// turns out malformed while it streams to a backend ends that attempt: the
// client is answered 400 (if nothing was answered yet), the backend
// connection is closed mid-body, and neither is it retried nor does it count
// against the backend's health. The outbound request is written anew by the
// balancer, so a backend sees exactly one framing: Content-Length or chunked
// (and no trailer fields: a chunked request's are dropped). A response's
// framing is read by net/http's ReadResponse, except for the common head
// (HTTP/1.1, a final status, one Content-Length or no body, no hop-by-hop
// header, plain lines) which is read directly; FuzzFastHead holds that
// reading to net/http's, FuzzReadRequest the request parser.
// Hop-by-hop headers, and those named in Connection, are not forwarded.
// Headers must arrive within Config.HeaderTimeout and fit in
// Config.MaxHeaderBytes (431 otherwise).
package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/analysis"
)

// Defaults for the zero values of Config.
const (
	DefaultReadiness     = "/"
	DefaultCheckInterval = 200 * time.Millisecond
	DefaultCheckTimeout  = time.Second
	DefaultFailThreshold = 2
	DefaultDrainTimeout  = 30 * time.Second
	// DefaultHeaderTimeout bounds how long a client may take to send a
	// request's headers (slowloris), and how long a kept-alive connection
	// may wait for its next request's first byte beyond IdleTimeout.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultMaxHeaderBytes bounds a request's line and headers together,
	// nginx's order of size (4 × 8 KiB buffers) with room for large cookies.
	DefaultMaxHeaderBytes = 64 << 10
	// IdleTimeout is how long a kept-alive client connection may stay idle.
	IdleTimeout = 2 * time.Minute
)

// MaxReplayBody is the largest request body that is recorded so that an
// idempotent request can be retried after its body was (partly) sent.
const MaxReplayBody = 64 << 10

// ReplicaHeader is the response header naming the backend that served it.
const ReplicaHeader = "X-Ferry-Replica"

// Errors returned by WaitReady and Remove; test with errors.Is.
var (
	ErrUnknownBackend = errors.New("unknown backend")
	ErrRemoved        = errors.New("backend removed")
	ErrDrainTimeout   = errors.New("drain timed out")
	ErrClosed         = errors.New("balancer closed")
)

// Config for one environment's balancer.
type Config struct {
	Listen        string        // host:port; port 0 picks a free port
	Readiness     string        // path polled on each backend; 2xx = ready; default "/"
	CheckInterval time.Duration // default 200ms
	CheckTimeout  time.Duration // default 1s
	FailThreshold int           // consecutive failed checks before a ready backend is taken out; default 2
	DrainTimeout  time.Duration // max wait for in-flight requests on Remove and Close; default 30s
	// HeaderTimeout is the longest a client may take to send a request's
	// line and headers; the connection is closed after it. Default 10s.
	HeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and headers; more is answered
	// 431. Default 64 KiB.
	MaxHeaderBytes int
	// TrustForwarded keeps the X-Forwarded-For (appending the client's
	// address to it), X-Forwarded-Proto, X-Forwarded-Host and Forwarded
	// headers clients send. Set it only when every client is a trusted
	// proxy (a TLS terminator in front); otherwise any client can claim any
	// address. Default false: they are dropped and set by the balancer.
	TrustForwarded bool
	// StickyHeader and StickyCookie keep a client on one track while
	// weights are set: a request carrying that header (or cookie) goes to
	// the track its value's hash falls in, the same for every request with
	// that value, and to a canary that only grows as its weight does (see
	// track.go). Requests without one follow the exact schedule. Both
	// empty (the default): every request follows the schedule.
	StickyHeader, StickyCookie string
	Logger                     *slog.Logger // default: discard
	// Listener, when set, is accepted on instead of listening on Listen:
	// a socket handed over by another process (the node's upgrade), which
	// may accept on it at the same time. Close closes it.
	Listener net.Listener
}

// withDefaults validates c and fills its zero values.
func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" && c.Listener == nil {
		return c, errors.New("lb config: listen address required")
	}
	if c.Listener != nil {
		c.Listen = c.Listener.Addr().String()
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return c, fmt.Errorf("lb config: listen %q: %w", c.Listen, err)
	}
	if c.Readiness == "" {
		c.Readiness = DefaultReadiness
	}
	if !strings.HasPrefix(c.Readiness, "/") {
		return c, fmt.Errorf("lb config: readiness %q: must be a path starting with /", c.Readiness)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"check interval", &c.CheckInterval, DefaultCheckInterval},
		{"check timeout", &c.CheckTimeout, DefaultCheckTimeout},
		{"drain timeout", &c.DrainTimeout, DefaultDrainTimeout},
		{"header timeout", &c.HeaderTimeout, DefaultHeaderTimeout},
	} {
		if *d.v < 0 {
			return c, fmt.Errorf("lb config: %s %v: must not be negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.FailThreshold < 0 {
		return c, fmt.Errorf("lb config: fail threshold %d: must not be negative", c.FailThreshold)
	}
	if c.FailThreshold == 0 {
		c.FailThreshold = DefaultFailThreshold
	}
	if c.MaxHeaderBytes < 0 {
		return c, fmt.Errorf("lb config: max header bytes %d: must not be negative", c.MaxHeaderBytes)
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Balancer is one environment's load balancer. Its methods are safe for
// concurrent use.
type Balancer struct {
	cfg Config
	log *slog.Logger
	// front serves the clients (front.go).
	front *frontServer
	// bufs holds the buffers that bodies are copied through.
	bufs bufferPool

	// ready is every ready backend sorted by ID, and routes the same by
	// track (track.go), each replaced as a whole (copy on write) whenever
	// a backend's readiness or the weights change.
	ready  atomic.Pointer[[]*backend]
	routes atomic.Pointer[routes]
	next   atomic.Uint64 // round-robin counter of retries

	mu       sync.Mutex
	backends map[string]*backend
	ln       net.Listener
	closed   bool
	weights  map[string]int // SetWeights'
	starved  []string       // weighted tracks without a ready backend, as last logged
	// retired are the figures of the backends forgotten since, by track;
	// zero the totals at the last ResetFigures (figures.go).
	retired map[string]*analysis.Figures
	zero    map[string]analysis.Figures
	wg      sync.WaitGroup // checkers
}

// New validates cfg and returns a balancer that is not yet listening.
func New(cfg Config) (*Balancer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Balancer{
		cfg:      cfg,
		log:      cfg.Logger,
		backends: make(map[string]*backend),
	}
	b.ready.Store(new([]*backend))
	b.routes.Store(&routes{def: &trackRoute{}})
	b.front = newFrontServer(b, cfg)
	return b, nil
}

// Start listens on Config.Listen and serves in the background. It returns
// once the listener is open.
func (b *Balancer) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.ln != nil {
		return errors.New("lb: already started")
	}
	ln := b.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", b.cfg.Listen); err != nil {
			return fmt.Errorf("lb listen: %w", err)
		}
	}
	b.ln = ln
	go func() {
		if err := b.front.serve(ln); err != nil && !errors.Is(err, errServerClosed) {
			b.log.Error("lb serve", "addr", ln.Addr().String(), "err", err)
		}
	}()
	b.log.Info("lb listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the address the balancer listens on, or "" before Start.
func (b *Balancer) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln == nil {
		return ""
	}
	return b.ln.Addr().String()
}

// Close stops accepting connections, waits for in-flight requests (bounded by
// DrainTimeout), stops the readiness checks and closes the connections to the
// backends. The backends themselves are left running.
func (b *Balancer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	all := make([]*backend, 0, len(b.backends))
	for _, be := range b.backends {
		all = append(all, be)
	}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DrainTimeout)
	defer cancel()
	err := b.front.shutdown(ctx)
	if err != nil {
		err = fmt.Errorf("lb close: %w", err)
		b.front.close()
	}
	for _, be := range all {
		be.stop()
	}
	b.wg.Wait()
	for _, be := range all {
		be.closeConns()
	}
	return err
}

// pickFor returns the backend for r's first attempt: in the track the
// weights (or r's sticky key) choose, round robin, with its in-flight count
// already raised, or nil when there is none.
func (b *Balancer) pickFor(r *http.Request) *backend {
	key := b.stickyKey(r)
	for {
		list, next := b.routes.Load().candidates(key)
		if be, removed := pickIn(list, next, nil); !removed {
			return be
		}
	}
}

// pick returns a ready backend not in tried, of any track, round robin,
// with its in-flight count already raised, or nil when there is none.
func (b *Balancer) pick(tried []*backend) *backend {
	for {
		if be, removed := pickIn(*b.ready.Load(), &b.next, tried); !removed {
			return be
		}
	}
}

// pickIn picks from list as pick does; removed reports that the backend
// it found was being removed, and the routing table should be read again.
func pickIn(list []*backend, next *atomic.Uint64, tried []*backend) (be *backend, removed bool) {
	n := len(list)
	if n == 0 {
		return nil, false
	}
	start := next.Add(1) - 1
	for i := range n {
		c := list[(start+uint64(i))%uint64(n)]
		if !contains(tried, c) {
			be = c
			break
		}
	}
	if be == nil {
		return nil, false
	}
	be.inflight.Add(1)
	// Remove sets removed before it reads inflight; reading removed after
	// raising inflight means one of the two always sees the other.
	if !be.removed.Load() {
		return be, false
	}
	be.done()
	return nil, true
}

func contains(list []*backend, be *backend) bool {
	for _, c := range list {
		if c == be {
			return true
		}
	}
	return false
}

var noReadyBody = []byte(`{"error":"no ready replica"}` + "\n")

func writeNoReady(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Retry-After"] = retryAfter
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(noReadyBody)
}

// Shared read-only header values.
var (
	jsonType   = []string{"application/json"}
	retryAfter = []string{"1"}
	protoHTTP  = []string{"http"}
	connClose  = []string{"close"}
)

// bufferPool hands out 32 KiB copy buffers for bodies. It pools array
// pointers so that Put does not allocate.
type bufferPool struct{ p sync.Pool }

const bufSize = 32 << 10

func (bp *bufferPool) Get() []byte {
	if a, ok := bp.p.Get().(*[bufSize]byte); ok {
		return a[:]
	}
	return new([bufSize]byte)[:]
}

func (bp *bufferPool) Put(buf []byte) {
	if cap(buf) >= bufSize {
		bp.p.Put((*[bufSize]byte)(buf[:bufSize]))
	}
}
