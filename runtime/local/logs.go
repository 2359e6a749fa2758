package local

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/replicalog"
)

// logPoll is how often Logs looks for new lines when following.
const logPoll = 100 * time.Millisecond

// Logs writes the last tail lines of each replica's log, every line
// prefixed with the replica's id ("dev-3 | …"), then, with follow, the new
// lines of every replica, those started meanwhile included, until ctx
// ends. Following survives rotation. With no replica running it shows
// the logs of the replicas that ran last.
func (t *Runtime) Logs(ctx context.Context, w io.Writer, tail int, follow bool) error {
	out := replicalog.New(w)
	followers := map[string]*follower{}
	defer func() {
		for _, f := range followers {
			f.close()
		}
	}()
	for _, id := range t.logIDs() {
		name := t.logName(id)
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		size := int64(0)
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		lines, _ := tailLog(name, t.cfg.LogFiles, tail, size)
		if err := out.Lines(id, lines...); err != nil {
			f.Close()
			return err
		}
		if !follow {
			f.Close()
			continue
		}
		f.Seek(size, io.SeekStart)
		followers[id] = &follower{name: name, f: f}
	}
	if !follow {
		return nil
	}
	var werr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pollEvery(ctx, logPoll, func() {
		live := t.liveIDs()
		for _, id := range live {
			if followers[id] == nil {
				// Started since: all of its output is new.
				followers[id] = &follower{name: t.logName(id)}
			}
		}
		ids := make([]string, 0, len(followers))
		for id := range followers {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			f := followers[id]
			if err := out.Lines(id, f.poll()...); err != nil {
				werr = err
				cancel()
				return
			}
			if !slices.Contains(live, id) && f.f != nil {
				// Stopped: its file will not grow again.
				f.close()
				delete(followers, id)
			}
		}
	})
	return werr
}

// logName is the current log file of replica id.
func (t *Runtime) logName(id string) string { return filepath.Join(t.logDir, id+".log") }

// liveIDs are the ids of the replicas not yet stopped, sorted.
func (t *Runtime) liveIDs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, len(t.replicas))
	for i, r := range t.replicas {
		ids[i] = r.id
	}
	slices.SortFunc(ids, compareIDs)
	return ids
}

// logIDs are the replicas whose logs Logs shows first: the live ones, or
// when none runs those whose logs were kept.
func (t *Runtime) logIDs() []string {
	if ids := t.liveIDs(); len(ids) > 0 {
		return ids
	}
	entries, _ := os.ReadDir(t.logDir)
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".log"); ok {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, compareIDs)
	return ids
}

// compareIDs orders replica ids by their number: dev-2 before dev-10.
func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
