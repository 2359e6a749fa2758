// Package exepages gives back the pages of the running executable that a
// long-lived process touched while it started.
//
// A Go binary's code and read-only data are file pages, mapped from the
// page cache, and on current kernels the page cache holds a file that was
// read ahead or written in large folios: touching one page maps its whole
// folio, up to hundreds of kilobytes. ferry's 70 MB executable runs
// hundreds of package inits and start-up paths scattered over it, so a
// process that then idles on a few hundred pages of code keeps tens of
// megabytes of it resident (RssFile in /proc/PID/status), counted in its
// RSS and pinned in memory as long as it is mapped.
//
// Release tells the kernel to read the executable page by page from now
// on (MADV_RANDOM: no read-ahead, so no large folios for what is faulted
// in later), drops this process's mappings of the pages it has
// (MADV_DONTNEED: safe for mappings never written, which code and
// read-only data are, unless a loader relocated them first: those are
// left as they are), and evicts from the page cache what no process
// maps any more (POSIX_FADV_DONTNEED). What the process touches after
// that faults back in, a page at a time: its working set, not its start.
// Trim does that at once and again after each burst of work that left
// more pages resident (a build, a takeover), so that an idle process
// holds what it idles on.
package exepages

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Trim releases the executable's pages (Release) at once and again one
// interval later, then checks every interval and releases again once more
// than slack bytes of them have become resident since, until ctx ends.
// The second release is for processes of the same executable started
// together (ferry serve and its node): a folio that another still mapped
// stays cached whole, and is mapped whole again on a touch, until both
// have let it go. released hears each release's figures or error.
func Trim(ctx context.Context, every time.Duration, slack int64, released func(Stats, error)) {
	st, err := Release()
	released(st, err)
	if err != nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !first {
			now, err := readRSSFile()
			if err != nil || now-st.After <= slack {
				continue
			}
		}
		first = false
		if st, err = Release(); err != nil {
			released(st, err)
			return
		}
		released(st, nil)
	}
}

// Stats is the process's resident file pages around a Release, in bytes
// (RssFile).
type Stats struct {
	Before, After int64
}

// mapping is one read-only mapping of the executable.
type mapping struct{ start, end uintptr }

// exeMappings parses /proc/self/smaps text for the mappings of exe that
// are not writable (code, read-only data) and hold no page of their own:
// those whose every page is the file's, so that dropping them loses
// nothing. A read-only mapping with anonymous pages was written before it
// was made read-only — the relocated data of a position-independent
// executable (its GNU_RELRO segment) — and is left alone: dropping it
// would bring back the file's unrelocated bytes.
func exeMappings(smaps []byte, exe string) ([]mapping, error) {
	var (
		ms   []mapping
		cur  *mapping // the current mapping, while it is a candidate
		anon bool     // the current mapping has anonymous pages
	)
	flush := func() {
		if cur != nil && !anon {
			ms = append(ms, *cur)
		}
		cur, anon = nil, false
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") && !strings.Contains(k, "-") {
			// A field of the current mapping ("Anonymous:   12 kB").
			if k == "Anonymous" && strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")) != "0" {
				anon = true
			}
			continue
		}
		// A mapping's header: start-end perms offset dev inode [path].
		flush()
		if len(f) < 6 || strings.Join(f[5:], " ") != exe || strings.Contains(f[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("smaps line %q: no address range", line)
		}
		start, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("smaps line %q: %w", line, err)
		}
		end, err := strconv.ParseUint(hi, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("smaps line %q: %w", line, err)
		}
		cur = &mapping{uintptr(start), uintptr(end)}
	}
	flush()
	return ms, sc.Err()
}

// rssFile reads RssFile from /proc/self/status text, in bytes.
func rssFile(status []byte) (int64, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("RssFile %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no RssFile in /proc/self/status")
}

// readRSSFile is this process's RssFile now.
func readRSSFile() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	return rssFile(b)
}
