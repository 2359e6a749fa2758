package coalesce

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// The scenarios below are scripts of steps run against a Group whose fetch
// blocks until the script answers it, so that which lookups share a batch
// is decided by the steps' order, never by timing.

// fetchCall is one call of the fake fetch, waiting for the script's answer.
type fetchCall struct {
	keys   []string
	leader string // the name of the lookup whose context the fetch got
	ctx    context.Context
	reply  chan fetchReply
}

type fetchReply struct {
	values map[string]int
	err    error
	panic  bool
}

// result is what one Lookup returned, or that it panicked.
type result struct {
	value    int
	found    bool
	err      error
	panicked bool
}

type nameKey struct{}

// harness runs one script.
type harness struct {
	t       *testing.T
	g       *Group[string, int]
	calls   chan *fetchCall
	batches map[string]*fetchCall
	lookups map[string]*runningLookup
}

type runningLookup struct {
	cancel context.CancelFunc
	done   chan result
}

func newHarness(t *testing.T, opts Options) *harness {
	h := &harness{
		t:       t,
		calls:   make(chan *fetchCall),
		batches: map[string]*fetchCall{},
		lookups: map[string]*runningLookup{},
	}
	h.g = New(func(ctx context.Context, keys []string) (map[string]int, error) {
		c := &fetchCall{keys: slices.Clone(keys), ctx: ctx, reply: make(chan fetchReply)}
		c.leader, _ = ctx.Value(nameKey{}).(string)
		h.calls <- c
		r := <-c.reply
		if r.panic {
			panic("fetch fails hard")
		}
		return r.values, r.err
	}, opts)
	return h
}

// wait is how long a step waits for something that must happen.
const wait = 10 * time.Second

type step func(h *harness)

// start starts a lookup of key, named name in later steps.
func start(name, key string) step {
	return func(h *harness) {
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), nameKey{}, name))
		l := &runningLookup{cancel: cancel, done: make(chan result, 1)}
		h.lookups[name] = l
		go func() {
			var r result
			defer func() {
				if recover() != nil {
					r.panicked = true
				}
				l.done <- r
			}()
			r.value, r.found, r.err = h.g.Lookup(ctx, key)
		}()
	}
}

// fetched expects the next fetch to start, run by the lookup named leader
// with keys, and names it batch.
func fetched(batch, leader string, keys ...string) step {
	return func(h *harness) {
		h.t.Helper()
		select {
		case c := <-h.calls:
			if !slices.Equal(c.keys, keys) || c.leader != leader {
				h.t.Fatalf("fetch %s: keys %q run by %q, want %q run by %q", batch, c.keys, c.leader, keys, leader)
			}
			h.batches[batch] = c
		case <-time.After(wait):
			h.t.Fatalf("fetch %s of %q did not start", batch, keys)
		}
	}
}

// queued waits until n lookups are queued.
func queued(n int) step {
	return func(h *harness) {
		h.t.Helper()
		deadline := time.Now().Add(wait)
		for {
			h.g.mu.Lock()
			got := len(h.g.queue)
			h.g.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				h.t.Fatalf("%d lookups queued, want %d", got, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// answer ends the fetch named batch with values, or err.
func answer(batch string, values map[string]int) step {
	return reply(batch, fetchReply{values: values})
}

func fail(batch string, err error) step { return reply(batch, fetchReply{err: err}) }

func panics(batch string) step { return reply(batch, fetchReply{panic: true}) }

func reply(batch string, r fetchReply) step {
	return func(h *harness) {
		h.t.Helper()
		c, ok := h.batches[batch]
		if !ok {
			h.t.Fatalf("no fetch %s to answer", batch)
		}
		c.reply <- r
	}
}

// cancel cancels the context of the lookup named name.
func cancel(name string) step { return func(h *harness) { h.lookups[name].cancel() } }

// alive checks that the context of the fetch named batch has not ended.
func alive(batch string) step {
	return func(h *harness) {
		h.t.Helper()
		if err := h.batches[batch].ctx.Err(); err != nil {
			h.t.Errorf("fetch %s's context ended: %v", batch, err)
		}
	}
}

// ended checks that the context of the fetch named batch has ended.
func ended(batch string) step {
	return func(h *harness) {
		h.t.Helper()
		select {
		case <-h.batches[batch].ctx.Done():
		case <-time.After(wait):
			h.t.Errorf("fetch %s's context did not end", batch)
		}
	}
}

// returned expects the lookup named name to return want (errors compared
// with errors.Is).
func returned(name string, want result) step {
	return func(h *harness) {
		h.t.Helper()
		select {
		case got := <-h.lookups[name].done:
			if got.value != want.value || got.found != want.found || !errors.Is(got.err, want.err) || (got.err == nil) != (want.err == nil) || got.panicked != want.panicked {
				h.t.Errorf("Lookup %s = %+v, want %+v", name, got, want)
			}
		case <-time.After(wait):
			h.t.Fatalf("Lookup %s did not return", name)
		}
	}
}

// pending checks that the lookup named name has not returned yet.
func pending(name string) step {
	return func(h *harness) {
		h.t.Helper()
		select {
		case got := <-h.lookups[name].done:
			h.t.Errorf("Lookup %s = %+v, want it still waiting", name, got)
		default:
		}
	}
}

func found(v int) result { return result{value: v, found: true} }

var errBoom = errors.New("boom")

func TestGroup(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		steps []step
	}{
		{
			name: "sequential lookups go alone",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"), answer("A", map[string]int{"alice": 1}), returned("a", found(1)),
				start("b", "bob"), fetched("B", "b", "bob"), answer("B", map[string]int{"bob": 2}), returned("b", found(2)),
			},
		},
		{
			name: "a free slot goes at once",
			opts: Options{Batches: 2},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), fetched("B", "b", "bob"),
				start("c", "carol"), queued(1),
				answer("B", map[string]int{"bob": 2}), returned("b", found(2)),
				fetched("C", "c", "carol"), answer("C", map[string]int{"carol": 3}), returned("c", found(3)),
				answer("A", map[string]int{"alice": 1}), returned("a", found(1)),
			},
		},
		{
			name: "lookups queued while busy share the next batch",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), queued(1), start("c", "carol"), queued(2), start("d", "dave"), queued(3),
				answer("A", map[string]int{"alice": 1}), returned("a", found(1)),
				fetched("B", "b", "bob", "carol", "dave"), queued(0),
				answer("B", map[string]int{"bob": 2, "carol": 3, "dave": 4}),
				returned("b", found(2)), returned("c", found(3)), returned("d", found(4)),
			},
		},
		{
			name: "the leader returns while the next batch runs on a waiter",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), queued(1),
				answer("A", map[string]int{"alice": 1}),
				fetched("B", "b", "bob"), returned("a", found(1)), pending("b"),
				start("c", "carol"), queued(1), // arrives during B: not in it
				answer("B", map[string]int{"bob": 2}), returned("b", found(2)),
				fetched("C", "c", "carol"), answer("C", map[string]int{"carol": 3}), returned("c", found(3)),
			},
		},
		{
			name: "a lookup made during a fetch of its key is answered by a later fetch",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "alice"), queued(1),
				answer("A", map[string]int{"alice": 1}), returned("a", found(1)),
				fetched("B", "b", "alice"), answer("B", map[string]int{"alice": 2}), returned("b", found(2)),
			},
		},
		{
			name: "a batch holds at most MaxBatch keys",
			opts: Options{Batches: 1, MaxBatch: 2},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), queued(1), start("c", "carol"), queued(2), start("d", "dave"), queued(3),
				answer("A", nil), returned("a", result{}),
				fetched("B", "b", "bob", "carol"), queued(1),
				answer("B", map[string]int{"bob": 2, "carol": 3}), returned("b", found(2)), returned("c", found(3)),
				fetched("D", "d", "dave"), answer("D", map[string]int{"dave": 4}), returned("d", found(4)),
			},
		},
		{
			name: "keys not found and repeated keys",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), queued(1), start("b2", "bob"), queued(2), start("x", "xavier"), queued(3),
				answer("A", nil), returned("a", result{}),
				fetched("B", "b", "bob", "bob", "xavier"), answer("B", map[string]int{"bob": 2}),
				returned("b", found(2)), returned("b2", found(2)), returned("x", result{}),
			},
		},
		{
			name: "a fetch error reaches every member",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), queued(1), start("c", "carol"), queued(2),
				answer("A", map[string]int{"alice": 1}), returned("a", found(1)),
				fetched("B", "b", "bob", "carol"), fail("B", errBoom),
				returned("b", result{err: errBoom}), returned("c", result{err: errBoom}),
				start("d", "dave"), fetched("D", "d", "dave"), answer("D", map[string]int{"dave": 4}), returned("d", found(4)),
			},
		},
		{
			name: "a queued lookup cancelled returns at once and leaves the queue",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), queued(1), start("c", "carol"), queued(2),
				cancel("b"), returned("b", result{err: context.Canceled}), queued(1),
				answer("A", map[string]int{"alice": 1}), returned("a", found(1)),
				fetched("C", "c", "carol"), answer("C", map[string]int{"carol": 3}), returned("c", found(3)),
			},
		},
		{
			name: "a batched lookup cancelled returns at once, the batch goes on",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), queued(1), start("c", "carol"), queued(2),
				answer("A", map[string]int{"alice": 1}), returned("a", found(1)),
				fetched("B", "b", "bob", "carol"),
				cancel("c"), returned("c", result{err: context.Canceled}), alive("B"),
				answer("B", map[string]int{"bob": 2, "carol": 3}), returned("b", found(2)),
			},
		},
		{
			name: "the leader cancelled does not fail the others",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), queued(1), start("c", "carol"), queued(2),
				answer("A", map[string]int{"alice": 1}), returned("a", found(1)),
				fetched("B", "b", "bob", "carol"),
				cancel("b"), alive("B"), pending("b"),
				answer("B", map[string]int{"bob": 2, "carol": 3}), returned("b", found(2)), returned("c", found(3)),
			},
		},
		{
			name: "a lookup alone is fetched under its own context",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				cancel("a"), ended("A"), fail("A", context.Canceled), returned("a", result{err: context.Canceled}),
			},
		},
		{
			name: "a fetch that panics answers the others and frees its slot",
			opts: Options{Batches: 1},
			steps: []step{
				start("a", "alice"), fetched("A", "a", "alice"),
				start("b", "bob"), queued(1), start("c", "carol"), queued(2),
				panics("A"), returned("a", result{panicked: true}),
				fetched("B", "b", "bob", "carol"), panics("B"),
				returned("b", result{panicked: true}), returned("c", result{err: errPanicked}),
				start("d", "dave"), fetched("D", "d", "dave"), answer("D", map[string]int{"dave": 4}), returned("d", found(4)),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts)
			for _, s := range tt.steps {
				s(h)
				if t.Failed() {
					return
				}
			}
			select {
			case c := <-h.calls:
				t.Errorf("fetch of %q run by %q, want none", c.keys, c.leader)
			default:
			}
			h.g.mu.Lock()
			defer h.g.mu.Unlock()
			if h.g.running != 0 || len(h.g.queue) != 0 {
				t.Errorf("at the end: %d slots taken, %d queued; want 0, 0", h.g.running, len(h.g.queue))
			}
		})
	}
}

func TestLookupEndedContext(t *testing.T) {
	g := New(func(context.Context, []string) (map[string]int, error) {
		t.Error("fetch called for an ended context")
		return nil, nil
	}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := g.Lookup(ctx, "alice"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lookup(cancelled ctx) = %v, want %v", err, context.Canceled)
	}
}

func TestBatchContext(t *testing.T) {
	now := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	tests := []struct {
		name      string
		deadlines []time.Duration // of the members, from now; 0: none
		want      time.Time       // zero: none
	}{
		{"one member: its own deadline", []time.Duration{2 * time.Second}, at(2 * time.Second)},
		{"one member: its own lack of one", []time.Duration{0}, time.Time{}},
		{"two members", []time.Duration{2 * time.Second, 1 * time.Second}, at(2 * time.Second)},
		{"the latest member's", []time.Duration{2 * time.Second, 7 * time.Second, 3 * time.Second}, at(7 * time.Second)},
		{"no deadlines: Timeout", []time.Duration{0, 0}, at(5 * time.Second)},
		{"no deadline and an earlier one", []time.Duration{1 * time.Second, 0}, at(5 * time.Second)},
		{"no deadline and a later one", []time.Duration{0, 9 * time.Second}, at(9 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New[string, int](nil, Options{Timeout: 5 * time.Second, Now: func() time.Time { return now }})
			var batch []*lookup[string, int]
			for i, d := range tt.deadlines {
				ctx, cancel := context.WithCancel(context.WithValue(context.Background(), nameKey{}, fmt.Sprint(i)))
				if d != 0 {
					ctx, cancel = context.WithDeadline(ctx, at(d))
				}
				defer cancel()
				batch = append(batch, &lookup[string, int]{key: fmt.Sprint(i), ctx: ctx})
			}
			ctx, cancelBatch := g.batchContext(batch)
			defer cancelBatch()
			got, ok := ctx.Deadline()
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("deadline = %v (%v), want %v", got, ok, tt.want)
			}
			if v := ctx.Value(nameKey{}); v != "0" {
				t.Errorf("Value = %v, want the first member's, 0", v)
			}
		})
	}
}

// TestBatchContextIgnoresCancellation checks that the context of a batch
// of several outlives the cancellation of the one running it.
func TestBatchContextIgnoresCancellation(t *testing.T) {
	g := New[string, int](nil, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	other, cancelOther := context.WithTimeout(context.Background(), time.Hour)
	defer cancelOther()
	batch := []*lookup[string, int]{{key: "alice", ctx: ctx}, {key: "bob", ctx: other}}
	bctx, bcancel := g.batchContext(batch)
	defer bcancel()
	cancel()
	if err := bctx.Err(); err != nil {
		t.Errorf("batch context after its member's cancel: %v, want nil", err)
	}
}

// TestStress runs many lookups, some cancelled, through a fetch that
// yields: every one returns its key's value or its context's error, and
// the Group ends with nothing in flight.
func TestStress(t *testing.T) {
	for _, batches := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("batches=", batches), func(t *testing.T) {
			var (
				mu      sync.Mutex
				fetches int
				largest int
			)
			g := New(func(ctx context.Context, keys []string) (map[string]int, error) {
				mu.Lock()
				fetches++
				largest = max(largest, len(keys))
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
				values := map[string]int{}
				for _, k := range keys {
					if k != "missing" {
						values[k] = len(k)
					}
				}
				return values, nil
			}, Options{Batches: batches, MaxBatch: 8})
			const workers, each = 32, 200
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						key := fmt.Sprintf("k%d", w*each+i)
						if i%17 == 0 {
							key = "missing"
						}
						ctx, cancel := context.WithCancel(context.Background())
						if i%5 == 0 {
							go cancel()
						}
						v, ok, err := g.Lookup(ctx, key)
						cancel()
						switch {
						case err != nil && !errors.Is(err, context.Canceled):
							t.Errorf("Lookup(%s) = %v", key, err)
						case err == nil && key == "missing" && ok:
							t.Errorf("Lookup(missing) found %d", v)
						case err == nil && key != "missing" && (!ok || v != len(key)):
							t.Errorf("Lookup(%s) = %d, %v, want %d, true", key, v, ok, len(key))
						}
					}
				})
			}
			wg.Wait()
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.running != 0 || len(g.queue) != 0 {
				t.Errorf("at the end: %d slots taken, %d queued; want 0, 0", g.running, len(g.queue))
			}
			if largest > 8 {
				t.Errorf("a batch of %d keys, want at most MaxBatch 8", largest)
			}
			t.Logf("%d lookups in %d fetches, the largest of %d keys", workers*each, fetches, largest)
		})
	}
}
