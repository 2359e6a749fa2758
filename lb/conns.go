package lb

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// clientConns tracks the balancer's accepted connections so that Close can
// end those that never carried a byte: http.Server.Shutdown counts them as
// active for 5 s, and HTTP clients routinely dial connections they never use.
type clientConns struct {
	mu    sync.Mutex
	conns map[*clientConn]struct{}
}

type listener struct {
	net.Listener
	set *clientConns
}

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &clientConn{Conn: c, set: l.set, accepted: time.Now()}
	l.set.mu.Lock()
	l.set.conns[cc] = struct{}{}
	l.set.mu.Unlock()
	return cc, nil
}

type clientConn struct {
	net.Conn
	set      *clientConns
	accepted time.Time
	used     atomic.Bool
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.used.Load() {
		c.used.Store(true)
	}
	return n, err
}

func (c *clientConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.conns, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}

// closeUnused closes the connections accepted before cutoff that never
// received a byte.
func (s *clientConns) closeUnused(cutoff time.Time) {
	s.mu.Lock()
	var unused []*clientConn
	for c := range s.conns {
		if !c.used.Load() && c.accepted.Before(cutoff) {
			unused = append(unused, c)
		}
	}
	s.mu.Unlock()
	for _, c := range unused {
		c.Close()
	}
}
