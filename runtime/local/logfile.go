package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// logFile is a replica's output file, rotated by size: name, name.1, …,
// name.(files-1), oldest last. It rotates at line boundaries where it can,
// so a file exceeds the limit by at most the rest of a line.
type logFile struct {
	name  string
	limit int64 // bytes per file
	files int   // files kept, the current one included

	mu   sync.Mutex
	f    *os.File
	size int64
}

// openLog opens (appending) or creates the log file name.
func openLog(name string, limit int64, files int) (*logFile, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &logFile{name: name, limit: limit, files: max(files, 1), f: f, size: fi.Size()}, nil
}

// Write appends p, rotating first when the current file is full.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if l.f == nil {
			return n, os.ErrClosed
		}
		chunk := p
		if l.size+int64(len(p)) > l.limit {
			if l.size >= l.limit {
				if err := l.rotate(); err != nil {
					return n, err
				}
				continue
			}
			// Fill the file up to the end of the line that crosses the
			// limit; the rest goes to the next file.
			if i := bytes.IndexByte(p[l.limit-l.size-1:], '\n'); i >= 0 {
				chunk = p[:l.limit-l.size+int64(i)]
			}
		}
		m, err := l.f.Write(chunk)
		n += m
		l.size += int64(m)
		if err != nil {
			return n, err
		}
		p = p[m:]
		if l.size >= l.limit && len(p) > 0 {
			if err := l.rotate(); err != nil {
				return n, err
			}
		}
	}
	if l.size >= l.limit {
		if err := l.rotate(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// rotate shifts name.i to name.(i+1), dropping the oldest, and starts an
// empty name.
func (l *logFile) rotate() error {
	l.f.Close()
	l.f = nil
	os.Remove(rotated(l.name, l.files-1))
	for i := l.files - 2; i >= 0; i-- {
		os.Rename(rotated(l.name, i), rotated(l.name, i+1))
	}
	if l.files == 1 {
		os.Remove(l.name)
	}
	f, err := os.OpenFile(l.name, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", l.name, err)
	}
	l.f, l.size = f, 0
	return nil
}

// Close closes the file; later writes fail.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// rotated is the name of the i-th file of a log, 0 being the current one.
func rotated(name string, i int) string {
	if i == 0 {
		return name
	}
	return name + "." + strconv.Itoa(i)
}

// tailLog returns the last n lines of the log name across its rotated
// files (files of them at most), oldest first, without line ends. Of the
// current file only the first size bytes are read (all when size < 0).
func tailLog(name string, files, n int, size int64) ([]string, error) {
	var lines []string
	for i := 0; i < files && len(lines) < n; i++ {
		sz := int64(-1)
		if i == 0 {
			sz = size
		}
		got, err := tailFile(rotated(name, i), n-len(lines), sz)
		if os.IsNotExist(err) {
			if i == 0 {
				continue
			}
			break
		}
		if err != nil {
			return nil, err
		}
		lines = append(got, lines...)
	}
	return lines, nil
}

// tailFile returns the last n complete or partial lines of the file's first
// size bytes (the whole file when size < 0), reading backwards in chunks.
func tailFile(name string, n int, size int64) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size < 0 {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		size = fi.Size()
	}
	const chunk = 64 << 10
	var buf []byte
	off := size
	for off > 0 && bytes.Count(bytes.TrimSuffix(buf, []byte("\n")), []byte("\n")) < n {
		step := min(int64(chunk), off)
		off -= step
		b := make([]byte, step)
		if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
			return nil, err
		}
		buf = append(b, buf...)
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	if len(buf) == 0 {
		return nil, nil
	}
	all := bytes.Split(buf, []byte("\n"))
	if off > 0 {
		// The first piece may be the end of a longer line.
		all = all[1:]
	}
	if len(all) > n {
		all = all[len(all)-n:]
	}
	out := make([]string, len(all))
	for i, l := range all {
		out[i] = string(l)
	}
	return out, nil
}

// follower reads the lines appended to a log, across rotations: when the
// file it reads has been renamed away and read to its end, it opens the new
// current file from its start.
type follower struct {
	name    string
	f       *os.File
	partial []byte
}

// followFrom starts following name at offset off of the current file.
func followFrom(name string, off int64) *follower {
	fl := &follower{name: name}
	if f, err := os.Open(name); err == nil {
		if _, err := f.Seek(off, io.SeekStart); err == nil {
			fl.f = f
		} else {
			f.Close()
		}
	}
	return fl
}

// poll returns the complete lines written since the last poll.
func (fl *follower) poll() []string {
	var lines []string
	for {
		if fl.f == nil {
			f, err := os.Open(fl.name)
			if err != nil {
				return lines
			}
			fl.f = f
		}
		lines = append(lines, fl.read()...)
		// Still the current file? Then wait for more.
		cur, err := os.Stat(fl.name)
		fi, ferr := fl.f.Stat()
		if err != nil || ferr != nil || os.SameFile(cur, fi) {
			return lines
		}
		// Rotated: read what was written before the rename, then move on.
		lines = append(lines, fl.read()...)
		if len(fl.partial) > 0 {
			lines = append(lines, string(fl.partial))
			fl.partial = nil
		}
		fl.f.Close()
		fl.f = nil
	}
}

// read reads to the end of the open file, keeping an unfinished last line
// for later.
func (fl *follower) read() []string {
	var lines []string
	buf := make([]byte, 32<<10)
	for {
		n, err := fl.f.Read(buf)
		data := append(fl.partial, buf[:n]...)
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			lines = append(lines, string(data[:i]))
			data = data[i+1:]
		}
		fl.partial = append([]byte(nil), data...)
		if err != nil || n == 0 {
			return lines
		}
	}
}

func (fl *follower) close() {
	if fl.f != nil {
		fl.f.Close()
	}
}

// pollEvery calls f every interval until ctx ends.
func pollEvery(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
