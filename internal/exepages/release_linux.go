package exepages

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Release gives back the executable's resident pages (see the package
// comment). It changes no memory the process can see.
func Release() (Stats, error) {
	st, err := release()
	if err != nil {
		return st, fmt.Errorf("release the executable's pages: %w", err)
	}
	return st, nil
}

func release() (Stats, error) {
	var st Stats
	var err error
	if st.Before, err = readRSSFile(); err != nil {
		return st, err
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return st, err
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return st, err
	}
	ms, err := exeMappings(smaps, exe)
	if err != nil {
		return st, err
	}
	for _, m := range ms {
		for _, advice := range []int{unix.MADV_RANDOM, unix.MADV_DONTNEED} {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, uintptr(advice)); errno != 0 {
				return st, fmt.Errorf("madvise %#x-%#x: %w", m.start, m.end, errno)
			}
		}
	}
	// The file itself, opened through /proc/self/exe so that an executable
	// replaced on disk since (an upgrade) is still the one running.
	if f, err := os.Open("/proc/self/exe"); err == nil {
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) // best effort: pages others map stay
		f.Close()
	}
	st.After, err = readRSSFile()
	return st, err
}
