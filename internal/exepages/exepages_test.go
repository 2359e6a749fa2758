package exepages

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestExeMappings(t *testing.T) {
	// smaps: each mapping's header, then its fields (a few kept here).
	smaps := `00400000-01b44000 r-xp 00000000 fe:01 1234 /usr/local/bin/ferry
Rss:               17360 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
01b44000-033e7000 r--p 01744000 fe:01 1234 /usr/local/bin/ferry
Rss:               19596 kB
Anonymous:             0 kB
033e7000-033f0000 r--p 02fe7000 fe:01 1234 /usr/local/bin/ferry
Rss:                  36 kB
Anonymous:            36 kB
033f0000-034e9000 rw-p 02ff0000 fe:01 1234 /usr/local/bin/ferry
Anonymous:           904 kB
034e9000-05541000 rw-p 00000000 00:00 0
Anonymous:           172 kB
7ff7a4c59000-7ff7a4daf000 r-xp 00028000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7ff7a4e00000-7ff7a4e10000 r-xp 00000000 fe:01 77 /usr/local/bin/ferry old (deleted)
Anonymous:             0 kB
`
	for _, tc := range []struct {
		exe  string
		want []mapping
	}{
		// Not the relocated read-only mapping (Anonymous 36 kB), nor the
		// writable one, nor libc's.
		{"/usr/local/bin/ferry", []mapping{{0x400000, 0x1b44000}, {0x1b44000, 0x33e7000}}},
		{"/usr/local/bin/ferry old (deleted)", []mapping{{0x7ff7a4e00000, 0x7ff7a4e10000}}},
		{"/usr/bin/other", nil},
	} {
		got, err := exeMappings([]byte(smaps), tc.exe)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("exeMappings(%q) = %x, want %x", tc.exe, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("exeMappings(%q)[%d] = %x, want %x", tc.exe, i, got[i], tc.want[i])
			}
		}
	}
	if _, err := exeMappings([]byte("zz-yy r-xp 0 0 0 /x\n"), "/x"); err == nil {
		t.Error("exeMappings of a bad address: no error")
	}
}

// TestReleaseBuildModes: a program that releases its pages and then
// works all over its binary again runs to the end, built as an ordinary
// executable and as a position-independent one (whose relocated
// read-only data must be left alone: dropped, it crashed the program).
func TestReleaseBuildModes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Release does nothing off Linux")
	}
	for _, mode := range []string{"exe", "pie"} {
		t.Run(mode, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "release")
			if out, err := exec.Command("go", "build", "-buildmode="+mode, "-o", bin, "./testdata/release").CombinedOutput(); err != nil {
				t.Fatalf("go build -buildmode=%s: %v\n%s", mode, err, out)
			}
			out, err := exec.Command(bin).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "released; still runs") {
				t.Fatalf("the %s program after Release: %v\n%s", mode, err, out)
			}
			t.Logf("%s: %s", mode, strings.TrimSpace(string(out)))
		})
	}
}

func TestRSSFile(t *testing.T) {
	for _, tc := range []struct {
		status  string
		want    int64
		wantErr bool
	}{
		{"VmRSS:\t   52656 kB\nRssAnon:\t   13692 kB\nRssFile:\t   38964 kB\n", 38964 << 10, false},
		{"VmRSS:\t 1 kB\n", 0, true},
		{"RssFile:\t lots kB\n", 0, true},
	} {
		got, err := rssFile([]byte(tc.status))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("rssFile(%q) = %d, %v; want %d, error %t", tc.status, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestRelease: in this very process, the test binary's resident pages
// shrink, and the code and data still run and read as before.
func TestRelease(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Release does nothing off Linux")
	}
	before := strings.Repeat("ferry", 3)
	touch() // whatever ran before (another test's Release), these pages are resident
	st, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RssFile %d kB before, %d kB after", st.Before>>10, st.After>>10)
	if st.Before <= 0 || st.After >= st.Before {
		t.Errorf("RssFile %d bytes before, %d after: want it to shrink", st.Before, st.After)
	}
	runtime.GC() // walks the binary's type and pointer data again
	if got := strings.Repeat("ferry", 3); got != before {
		t.Errorf("after Release the same call returns %q, want %q", got, before)
	}
}

// TestTrim: a release at once and one an interval later, then another
// only after more than slack of the executable became resident again.
func TestTrim(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Release does nothing off Linux")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	releases := make(chan Stats, 10)
	const slack = 128 << 10
	go Trim(ctx, 10*time.Millisecond, slack, func(st Stats, err error) {
		if err != nil {
			t.Error(err)
		}
		releases <- st
	})
	<-releases
	settled := <-releases // an interval later, whatever grew
	touch()
	select {
	case grown := <-releases:
		t.Logf("RssFile %d kB after the second release, %d kB before the third, %d kB after it", settled.After>>10, grown.Before>>10, grown.After>>10)
		// (What a release frees is TestRelease's; here, when it is taken.)
		if grown.Before-settled.After <= slack {
			t.Errorf("the third release: RssFile %d bytes after the second, %d before the third; want it taken only past the slack (%d)", settled.After, grown.Before, slack)
		}
	case <-time.After(5 * time.Second):
		now, _ := readRSSFile()
		t.Fatalf("no third release within 5 s: RssFile %d kB after the second, %d kB now (slack %d kB)", settled.After>>10, now>>10, slack>>10)
	}
}

// touch makes code and data all over the binary resident again: stack
// traces of every goroutine and GCs walk its symbol and pointer tables.
func touch() {
	buf := make([]byte, 1<<20)
	for range 10 {
		runtime.Stack(buf, true)
		runtime.GC()
	}
}
