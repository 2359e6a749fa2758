package cputime

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, stat string
		want       time.Duration
	}{
		{"plain", "1234 (postgres) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0", 2800 * time.Millisecond},
		{"a name with spaces and parentheses", "99 (a (b) c) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0", 100 * time.Millisecond},
		{"too short", "99 (x) R 1 2", 0},
		{"no parenthesis", "garbage", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseStat(tt.stat); got != tt.want {
				t.Errorf("parseStat(%q) = %v, want %v", tt.stat, got, tt.want)
			}
		})
	}
}

// TestOfThisProcess: a process that burns CPU sees /proc's figure rise
// with getrusage's.
func TestOfThisProcess(t *testing.T) {
	self0, of0 := Self(), Of(os.Getpid())
	deadline := time.Now().Add(10 * time.Second)
	for Self() < self0+200*time.Millisecond { // 200 ms of CPU, however long that takes
		if time.Now().After(deadline) {
			t.Fatal("Self() did not rise by 200 ms in 10 s of busy work")
		}
	}
	if got := Of(os.Getpid()) - of0; got < 150*time.Millisecond {
		t.Errorf("Of(self) rose %v while Self() rose 200 ms, want ≥ 150 ms", got)
	}
	if got := Of(0); got != 0 {
		t.Errorf("Of(0) = %v, want 0", got)
	}
}
