package pipeline

import (
	"bytes"
	"fmt"
	"sync"
)

// maxLine bounds one log line; longer output is split.
const maxLine = 4096

// Log is a step's output. It is an io.Writer that splits what is written into
// lines and hands each to the listener; it is safe for concurrent use, so a
// command's stdout and stderr may both write to it.
type Log struct {
	step string
	l    Listener

	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer.
func (g *Log) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf = append(g.buf, p...)
	for {
		i := bytes.IndexByte(g.buf, '\n')
		if i < 0 {
			break
		}
		g.emit(g.buf[:i])
		g.buf = g.buf[i+1:]
	}
	for len(g.buf) >= maxLine {
		g.emit(g.buf[:maxLine])
		g.buf = g.buf[maxLine:]
	}
	return len(p), nil
}

// Printf writes one formatted line.
func (g *Log) Printf(format string, args ...any) {
	fmt.Fprintf(g, format+"\n", args...)
}

func (g *Log) emit(line []byte) {
	g.l.Line(g.step, string(bytes.TrimRight(line, "\r")))
}

func (g *Log) flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.buf) > 0 {
		g.emit(g.buf)
		g.buf = nil
	}
}
