// Package replicalog writes the log lines of several replicas to one
// writer, each prefixed with the replica's name ("dev-3 | …"), whole lines
// at a time from any number of goroutines: the format of `ferry logs ENV`
// for every runtime.
package replicalog

import (
	"io"
	"strings"
	"sync"
)

// Writer writes prefixed lines to an io.Writer. After the first write
// error it writes nothing more and returns that error. It is safe for
// concurrent use.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// New returns a Writer on w.
func New(w io.Writer) *Writer { return &Writer{w: w} }

// Lines writes lines of the replica name, each as "name | line\n", in one
// write, so that no other replica's line comes between them.
func (w *Writer) Lines(name string, lines ...string) error {
	if len(lines) == 0 {
		return w.Err()
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(name)
		b.WriteString(" | ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		_, w.err = io.WriteString(w.w, b.String())
	}
	return w.err
}

// Err is the first write error, or nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
