package testport

import (
	"fmt"
	"net"
	"testing"
)

func TestConsecutive(t *testing.T) {
	for _, n := range []int{1, 3, 7} {
		ports := Consecutive(t, n)
		if len(ports) != n {
			t.Fatalf("Consecutive(%d) = %v", n, ports)
		}
		for i, p := range ports {
			if p < Low || p >= High || p != ports[0]+i {
				t.Errorf("Consecutive(%d) = %v: want consecutive ports in [%d, %d)", n, ports, Low, High)
			}
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				t.Errorf("port %d of Consecutive(%d) cannot be listened on: %v", p, n, err)
				continue
			}
			ln.Close()
		}
	}
}

// TestFindSkipsTakenRuns: a run with a taken port is passed over, and
// when every run has one, the error says so.
func TestFindSkipsTakenRuns(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	taken := busy.Addr().(*net.TCPAddr).Port
	picks := []int{taken - 1, taken} // runs of 2 that hold the taken port
	i := 0
	if _, err := find(2, func() int { p := picks[i%2]; i++; return p }); err == nil {
		t.Errorf("find(2) over runs holding taken port %d = nil error, want one", taken)
	}
	free := Free(t)
	picks = []int{taken, free}
	i = 0
	got, err := find(1, func() int { p := picks[min(i, 1)]; i++; return p })
	if err != nil || len(got) != 1 || got[0] != free {
		t.Errorf("find(1) after a taken port = %v, %v; want [%d]", got, err, free)
	}
}
