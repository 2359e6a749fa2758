// Package testport finds loopback ports for tests that must name a port
// before something binds it: a server started as another process, a
// demo given --dev-port, an address left closed on purpose.
//
// The ports come from [Low, High), below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768–60999 by default). A
// port found by listening on :0 comes from that range, which is also
// where every outgoing connection of every process takes its local port;
// one taken that way between the test's check and the bind fails the
// bind with "address already in use" (a CI run failed so). Below the
// range, only another explicit bind can take it.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// The range ports are found in.
const Low, High = 20000, 32000

// tries bounds the random probes before a test gives up.
const tries = 200

// Free is a loopback port nothing listens on now.
func Free(t testing.TB) int {
	t.Helper()
	return Consecutive(t, 1)[0]
}

// Addr is 127.0.0.1:port for a Free port.
func Addr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", Free(t))
}

// Consecutive is n consecutive loopback ports nothing listens on now
// (the demo puts a middle stage on the port after prod's).
func Consecutive(t testing.TB, n int) []int {
	t.Helper()
	ports, err := find(n, func() int { return Low + rand.IntN(High-Low-n+1) })
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// find probes runs of n ports from the first ports pick gives, holding
// each run's listeners until the whole run is known free.
func find(n int, pick func() int) ([]int, error) {
	for range tries {
		first := pick()
		var held []net.Listener
		for p := first; p < first+n; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				break
			}
			held = append(held, ln)
		}
		for _, ln := range held {
			ln.Close()
		}
		if len(held) == n {
			ports := make([]int, n)
			for i := range ports {
				ports[i] = first + i
			}
			return ports, nil
		}
	}
	return nil, fmt.Errorf("no %d consecutive free ports in [%d, %d) after %d tries", n, Low, High, tries)
}
