//go:build unix

package lb

import (
	"errors"
	"syscall"
)

// peerClosed reports whether the backend closed c (or sent bytes nobody asked
// for) while it was idle, looking without blocking.
func (c *bconn) peerClosed() bool {
	if c.raw == nil {
		return false
	}
	closed := false
	err := c.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n > 0 || (n == 0 && err == nil) || (err != nil && !errors.Is(err, syscall.EAGAIN))
		return true
	})
	return closed || err != nil
}
