package local

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogFileRotates(t *testing.T) {
	name := filepath.Join(t.TempDir(), "r.log")
	l, err := openLog(name, 100, 3)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for i := range 60 {
		line := fmt.Sprintf("line %02d", i) // 8 bytes and a newline
		all = append(all, line)
		// Several lines per write, as a pipe delivers them.
		if i%3 == 2 {
			fmt.Fprintf(l, "%s\n%s\n%s\n", all[i-2], all[i-1], all[i])
		}
	}
	l.Close()
	var kept []string
	for i := 2; i >= 0; i-- {
		b, err := os.ReadFile(rotated(name, i))
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		if len(b) > 100+9 {
			t.Errorf("file %d is %d bytes, want at most the limit and one line", i, len(b))
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("file %d ends mid-line: %q", i, b)
		}
		kept = append(kept, strings.Fields(strings.ReplaceAll(string(b), "line ", "line_"))...)
	}
	if _, err := os.Stat(rotated(name, 3)); err == nil {
		t.Errorf("a fourth file is kept")
	}
	// What is kept is the end of what was written, in order.
	want := slices.Clone(all[len(all)-len(kept):])
	for i := range want {
		want[i] = strings.ReplaceAll(want[i], "line ", "line_")
	}
	if !slices.Equal(kept, want) || len(kept) < 20 {
		t.Errorf("kept lines %q, want the last ones written", kept)
	}

	got, err := tailLog(name, 3, 15, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, all[45:]) {
		t.Errorf("tailLog(15) = %q, want %q", got, all[45:])
	}
}

func TestTailFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	var b bytes.Buffer
	for i := range 30000 { // ~300 KB: several read chunks
		fmt.Fprintf(&b, "line %d\n", i)
	}
	b.WriteString("partial")
	os.WriteFile(name, b.Bytes(), 0o644)
	for _, tc := range []struct {
		n    int
		size int64
		want []string
	}{
		{0, -1, nil},
		{1, -1, []string{"partial"}},
		{3, -1, []string{"line 29998", "line 29999", "partial"}},
		{2, int64(len("line 0\nline 1\n")), []string{"line 0", "line 1"}},
		{5, int64(len("line 0\nline 1\n")), []string{"line 0", "line 1"}},
	} {
		got, err := tailFile(name, tc.n, tc.size)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("tailFile(%d, %d) = %q, %v, want %q", tc.n, tc.size, got, err, tc.want)
		}
	}
	got, _ := tailFile(name, 20000, -1)
	if len(got) != 20000 || got[0] != "line 10001" {
		t.Errorf("tailFile(20000) = %d lines from %q, want 20000 from line 10001", len(got), got[0])
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsFollowAcrossRotation(t *testing.T) {
	im := appImages(t)
	tg := newTarget(t, im, func(c *Config) { c.LogSize, c.LogFiles = 2048, 3 })
	apply(t, tg, spec(im.v1, 1))
	id := tg.liveIDs()[0]

	var out syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tg.Logs(ctx, &out, 2, true) }()
	waitFor(t, 5*time.Second, "the log tail", func() bool { return strings.Contains(out.String(), id+" | ") })

	// 12 bursts of 100 lines (~750 bytes each), slower than the follower
	// polls: the files rotate every few bursts.
	for burst := range 12 {
		if code, _ := get(t, tg, fmt.Sprintf("/print?n=100&text=b%02d", burst)); code != 200 {
			t.Fatalf("GET /print = %d", code)
		}
		time.Sleep(150 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "the last line followed", func() bool { return strings.Contains(out.String(), "b11 99") })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Logs(follow) = %v", err)
	}
	var printed []string
	for _, line := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(line, id+" | ") && line != "" {
			t.Errorf("line %q lacks the replica prefix", line)
		}
		if body := strings.TrimPrefix(line, id+" | "); len(body) > 0 && body[0] == 'b' {
			printed = append(printed, body)
		}
	}
	var want []string
	for burst := range 12 {
		for i := range 100 {
			want = append(want, fmt.Sprintf("b%02d %d", burst, i))
		}
	}
	if !slices.Equal(printed, want) {
		t.Errorf("followed %d printed lines, want the %d printed, once each, in order", len(printed), len(want))
	}
	if _, err := os.Stat(rotated(tg.logName(id), 2)); err != nil {
		t.Errorf("log did not rotate twice: %v", err)
	}

	// Without follow: the last lines only.
	var tail syncBuffer
	if err := tg.Logs(t.Context(), &tail, 3, false); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(tail.String()), "\n"); len(lines) != 3 || lines[2] != id+" | b11 99" {
		t.Errorf("Logs(tail 3) = %q, want the last 3 lines of %s", lines, id)
	}
}
