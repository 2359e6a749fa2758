// Package coalesce gathers concurrent lookups of keys into batches, so that
// many callers asking at once cost one round trip instead of one each.
//
// A Group runs at most Options.Batches batches at a time. A lookup that
// finds one of those slots free does not wait: its caller's goroutine runs
// a batch at once, made of its own key and whatever lookups are queued.
// Only lookups that arrive while every slot is busy queue. When a batch
// ends and lookups are queued, its slot passes to the oldest queued caller,
// which wakes and runs the next batch (of every key queued by then, up to
// Options.MaxBatch) on its own goroutine; the caller that ran the finished
// batch returns with its own answer and is never kept running others'.
// There is no timer: a lookup waits only while the slots are busy.
//
// # Freshness
//
// A lookup is only ever answered by a batch that its caller queued for, or
// started, before the batch's fetch began: a batch is formed from the
// lookups made so far and never joined once formed. So every answer comes
// from a fetch that started after the lookup was made, and a store that
// reads committed data at the start of each statement (PostgreSQL's READ
// COMMITTED, say) answers with everything committed before the lookup, by
// any process. Coalescing keeps read-your-writes; it is not a cache.
//
// # Cancellation
//
// A queued caller whose context ends returns its error at once and leaves
// the queue. A batch belongs to all its members, so the fetch runs under
// the context of the caller that runs it with its cancellation removed
// (context.WithoutCancel) and a deadline of its own: the latest of its
// members' deadlines, a member without a deadline counting as
// Options.Timeout from the batch's start. (A batch of one lookup runs
// under that lookup's context as it is.) One member giving up does not
// fail the others; the caller running a batch waits for that batch even
// if its own context ends, for as long as that bound allows.
package coalesce

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Fetch looks up keys, which may repeat, and returns the value of each key
// it found; a key missing from the map was not found. An error is the
// answer of every key of the batch.
type Fetch[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// Options tune a Group. Zero fields take the defaults.
type Options struct {
	Batches  int              // most batches in flight at once: 1
	MaxBatch int              // most keys in one batch: 64
	Timeout  time.Duration    // a batch's bound for members without a deadline: 5 s
	Now      func() time.Time // the clock for that bound: time.Now
}

// Group coalesces concurrent lookups into batches fetched by one function.
// It is safe for concurrent use.
type Group[K comparable, V any] struct {
	fetch Fetch[K, V]
	opts  Options

	mu      sync.Mutex
	running int             // slots taken: batches running, or handed to a queued caller
	queue   []*lookup[K, V] // callers waiting, oldest first
}

// New returns a Group that fetches batches with fetch.
func New[K comparable, V any](fetch Fetch[K, V], opts Options) *Group[K, V] {
	if opts.Batches < 1 {
		opts.Batches = 1
	}
	if opts.MaxBatch < 1 {
		opts.MaxBatch = 64
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Group[K, V]{fetch: fetch, opts: opts}
}

// The states of a lookup, changed under Group.mu.
const (
	stateQueued  = iota // in Group.queue
	stateBatched        // taken into a batch, waiting for its answer
	stateLeading        // handed a slot: to run the next batch
)

// lookup is one caller's key, and then its answer.
type lookup[K comparable, V any] struct {
	key   K
	ctx   context.Context
	state int
	ready chan struct{} // closed when answered, or when handed a slot; nil for a caller that never queued

	value V
	found bool
	err   error
}

// errPanicked answers the members of a batch whose fetch panicked.
var errPanicked = errors.New("coalesce: fetch panicked")

// Lookup returns the value of key, whether it was found, or the error of
// the fetch that looked for it (or ctx's error, when ctx ended first).
func (g *Group[K, V]) Lookup(ctx context.Context, key K) (value V, found bool, err error) {
	if err := ctx.Err(); err != nil {
		return value, false, err
	}
	g.mu.Lock()
	if g.running < g.opts.Batches {
		g.running++
		me := &lookup[K, V]{key: key, ctx: ctx}
		batch := g.takeBatch(me)
		g.mu.Unlock()
		g.run(batch)
		return me.value, me.found, me.err
	}
	me := &lookup[K, V]{key: key, ctx: ctx, ready: make(chan struct{})}
	g.queue = append(g.queue, me)
	g.mu.Unlock()

	select {
	case <-me.ready:
	case <-ctx.Done():
		g.mu.Lock()
		switch me.state {
		case stateQueued:
			g.unqueue(me)
		case stateLeading: // handed a slot just as ctx ended: pass it on
			g.release()
		case stateBatched: // the batch answers no one
		}
		g.mu.Unlock()
		return value, false, ctx.Err()
	}
	if me.state == stateLeading { // written before ready was closed
		g.mu.Lock()
		batch := g.takeBatch(me)
		g.mu.Unlock()
		g.run(batch)
	}
	return me.value, me.found, me.err
}

// takeBatch forms a batch of leader and the oldest queued lookups. The
// caller holds g.mu and a slot.
func (g *Group[K, V]) takeBatch(leader *lookup[K, V]) []*lookup[K, V] {
	n := min(len(g.queue), g.opts.MaxBatch-1)
	batch := make([]*lookup[K, V], 0, 1+n)
	batch = append(batch, leader)
	for _, l := range g.queue[:n] {
		l.state = stateBatched
		batch = append(batch, l)
	}
	rest := copy(g.queue, g.queue[n:])
	clear(g.queue[rest:])
	g.queue = g.queue[:rest]
	return batch
}

// unqueue removes l from the queue. The caller holds g.mu.
func (g *Group[K, V]) unqueue(l *lookup[K, V]) {
	for i, q := range g.queue {
		if q == l {
			g.removeQueued(i)
			return
		}
	}
}

// removeQueued removes the i-th lookup of the queue. The caller holds g.mu.
func (g *Group[K, V]) removeQueued(i int) {
	last := len(g.queue) - 1
	copy(g.queue[i:], g.queue[i+1:])
	g.queue[last] = nil
	g.queue = g.queue[:last]
}

// release gives up a slot: to the oldest queued lookup, which wakes to
// run the next batch, or back to the Group. The caller holds g.mu.
func (g *Group[K, V]) release() {
	if len(g.queue) == 0 {
		g.running--
		return
	}
	next := g.queue[0]
	g.removeQueued(0)
	next.state = stateLeading
	close(next.ready)
}

// run fetches batch on the calling goroutine, gives up its slot and
// answers every member; batch[0] is the caller's own lookup.
func (g *Group[K, V]) run(batch []*lookup[K, V]) {
	answered := false
	defer func() {
		if !answered { // fetch panicked: answer the others before the panic goes on
			g.answer(batch, nil, errPanicked)
		}
	}()
	keys := make([]K, len(batch))
	for i, l := range batch {
		keys[i] = l.key
	}
	ctx, cancel := g.batchContext(batch)
	defer cancel()
	values, err := g.fetch(ctx, keys)
	answered = true
	g.answer(batch, values, err)
}

// answer answers the batch's members, then gives up its slot. (In that
// order, the caller handed the slot is the goroutine woken last, which the
// Go scheduler runs first on this P: the next batch starts before the
// members answered here write their responses.) batch[0], the caller's
// own lookup, is not waiting.
func (g *Group[K, V]) answer(batch []*lookup[K, V], values map[K]V, err error) {
	for i, l := range batch {
		if err != nil {
			l.err = err
		} else {
			l.value, l.found = values[l.key]
		}
		if i > 0 {
			close(l.ready)
		}
	}
	g.mu.Lock()
	g.release()
	g.mu.Unlock()
}

// batchContext is the context of a batch's fetch: the values of the
// context of the caller running it, no cancellation, and the latest
// deadline of the members (Timeout from now for one without). A batch of
// one lookup is fetched under that lookup's own context.
func (g *Group[K, V]) batchContext(batch []*lookup[K, V]) (context.Context, context.CancelFunc) {
	if len(batch) == 1 {
		return batch[0].ctx, func() {}
	}
	var latest time.Time
	for _, l := range batch {
		d, ok := l.ctx.Deadline()
		if !ok {
			d = g.opts.Now().Add(g.opts.Timeout)
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
}
