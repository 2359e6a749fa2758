// Package loadtest is the closed-loop HTTP load of ferry's zero-downtime
// tests and benchmarks: a few workers, each on its own keep-alive
// connection, send requests one after the other until stopped, and every
// request that fails (a transport error, an answer other than 2xx, a body
// other than the one wanted) is counted, the first few with their error.
package loadtest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one request of a load.
type Request struct {
	Method string // GET when empty
	URL    string
	// Body is sent as text/plain when not empty.
	Body string
	// Want is the body the answer must have; any body will do when empty.
	Want string
}

// Config describes a load.
type Config struct {
	// Workers send requests at the same time, each waiting for its answer
	// before the next; 1 when 0.
	Workers int
	// URL is where a GET goes when Request is nil.
	URL string
	// Request makes worker w's i-th request (both from 0); nil sends
	// GET URL.
	Request func(w, i int) Request
	// Key names what answered a request, for Served: the body, say, or a
	// header naming the replica. Without it nothing is recorded per
	// answer.
	Key func(res *http.Response, body []byte) string
	// Max bounds the requests sent by all workers; no bound when 0.
	Max int64
	// Duration ends the load by itself; when 0 only Stop does.
	Duration time.Duration
	// Pause is how long a worker waits between two of its requests.
	Pause time.Duration
	// Timeout bounds one request; 10s when 0.
	Timeout time.Duration
}

// keptErrors is how many failures Errors names.
const keptErrors = 10

// Load is a running load.
type Load struct {
	cfg        Config
	ok, failed atomic.Int64
	sent       atomic.Int64
	stop       context.CancelFunc
	wg         sync.WaitGroup

	mu      sync.Mutex
	errs    []string
	answers []answer
}

// answer is a successful request: when it started and Key's name for it.
type answer struct {
	start time.Time
	key   string
}

// Start starts the load described by cfg.
func Start(cfg Config) *Load {
	cfg.Workers = max(cfg.Workers, 1)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Request == nil {
		url := cfg.URL
		cfg.Request = func(int, int) Request { return Request{URL: url} }
	}
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.Duration > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), cfg.Duration)
	}
	l := &Load{cfg: cfg, stop: cancel}
	for w := range cfg.Workers {
		l.wg.Go(func() { l.work(ctx, w) })
	}
	return l
}

// work sends worker w's requests over its own keep-alive connection.
func (l *Load) work(ctx context.Context, w int) {
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: l.cfg.Timeout}
	for i := 0; ctx.Err() == nil; i++ {
		if l.cfg.Max > 0 && l.sent.Add(1) > l.cfg.Max {
			return
		}
		l.one(ctx, client, l.cfg.Request(w, i))
		if l.cfg.Pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(l.cfg.Pause):
			}
		}
	}
}

// one sends req and counts its outcome; a request cut off by the end of
// the load counts for nothing.
func (l *Load) one(ctx context.Context, client *http.Client, req Request) {
	start := time.Now()
	hreq, err := http.NewRequestWithContext(ctx, cmp.Or(req.Method, http.MethodGet), req.URL, strings.NewReader(req.Body))
	if err != nil {
		l.fail(err.Error())
		return
	}
	if req.Body != "" {
		hreq.Header.Set("Content-Type", "text/plain")
	}
	res, err := client.Do(hreq)
	if ctx.Err() != nil {
		if err == nil {
			res.Body.Close()
		}
		return
	}
	if err != nil {
		l.fail(err.Error())
		return
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	switch {
	case ctx.Err() != nil:
	case err != nil:
		l.fail(err.Error())
	case res.StatusCode/100 != 2:
		l.fail(fmt.Sprintf("%s %s: %s: %s", hreq.Method, req.URL, res.Status, body))
	case req.Want != "" && string(body) != req.Want:
		l.fail(fmt.Sprintf("%s %s: body %q, want %q", hreq.Method, req.URL, body, req.Want))
	default:
		l.ok.Add(1)
		if l.cfg.Key != nil {
			key := l.cfg.Key(res, body)
			l.mu.Lock()
			l.answers = append(l.answers, answer{start, key})
			l.mu.Unlock()
		}
	}
}

func (l *Load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < keptErrors {
		l.errs = append(l.errs, msg)
	}
}

// Stop ends the load and waits for its workers; requests then in flight
// are cut off and not counted. Stopping twice is fine.
func (l *Load) Stop() {
	l.stop()
	l.wg.Wait()
}

// OK is how many requests succeeded so far.
func (l *Load) OK() int64 { return l.ok.Load() }

// Failed is how many requests failed so far.
func (l *Load) Failed() int64 { return l.failed.Load() }

// Errors says why the first requests that failed did (ten at most).
func (l *Load) Errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// Served counts the successful requests that started after since by what
// Config.Key named them (empty without a Key).
// FirstServed is when the first request that key answered started, and
// false when key answered none.
func (l *Load) FirstServed(key string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, a := range l.answers {
		if a.key == key && (first.IsZero() || a.start.Before(first)) {
			first = a.start
		}
	}
	return first, !first.IsZero()
}

func (l *Load) Served(since time.Time) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]int{}
	for _, a := range l.answers {
		if a.start.After(since) {
			m[a.key]++
		}
	}
	return m
}
