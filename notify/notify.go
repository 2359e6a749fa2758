// Package notify wakes waiters when something changed: a follower of a
// build log or of the environments waits on Wait's channel, and every
// Notify closes it and starts a new one.
package notify

import "sync"

// Broadcast is safe for concurrent use; the zero value is not ready: use New.
type Broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// New returns a Broadcast.
func New() *Broadcast { return &Broadcast{ch: make(chan struct{})} }

// Wait returns a channel closed at the next Notify.
func (b *Broadcast) Wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// Notify wakes every waiter.
func (b *Broadcast) Notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}
