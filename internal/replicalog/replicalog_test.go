package replicalog_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/internal/replicalog"
)

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"one", []string{"hello"}, "dev-1 | hello\n"},
		{"several", []string{"a", "", "c"}, "dev-1 | a\ndev-1 | \ndev-1 | c\n"},
		{"none", nil, ""},
	} {
		var b strings.Builder
		if err := replicalog.New(&b).Lines("dev-1", tc.lines...); err != nil || b.String() != tc.want {
			t.Errorf("Lines(%s) = %v, wrote %q; want nil, %q", tc.name, err, b.String(), tc.want)
		}
	}
}

// TestLinesConcurrent: the lines of one call stay together whatever other
// goroutines write meanwhile.
func TestLinesConcurrent(t *testing.T) {
	var b strings.Builder
	w := replicalog.New(&b)
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c", "d"} {
		wg.Go(func() {
			for range 100 {
				if err := w.Lines(name, "1", "2"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("wrote %d lines, want 800", len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		name, _, _ := strings.Cut(lines[i], " | ")
		if lines[i] != name+" | 1" || lines[i+1] != name+" | 2" {
			t.Fatalf("lines %d and %d = %q, %q; want one call's two lines together", i, i+1, lines[i], lines[i+1])
		}
	}
}

type failing struct{ n int }

func (f *failing) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("closed")
}

// TestLinesAfterError: the first write error is kept and nothing more is
// written.
func TestLinesAfterError(t *testing.T) {
	f := &failing{}
	w := replicalog.New(f)
	for range 3 {
		if err := w.Lines("dev-1", "x"); err == nil || err.Error() != "closed" {
			t.Errorf("Lines on a closed writer = %v, want closed", err)
		}
	}
	if f.n != 1 || w.Err() == nil {
		t.Errorf("after an error: %d writes, Err %v; want 1 write and the error", f.n, w.Err())
	}
	if err := w.Lines("dev-1"); err == nil {
		t.Errorf("Lines() after an error = nil, want the error")
	}
}
