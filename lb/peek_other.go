//go:build !unix

package lb

// peerClosed cannot look without blocking here: a stale connection is found
// when it is used.
func (c *bconn) peerClosed() bool { return false }
