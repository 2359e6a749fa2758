package source

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// clearStaleLocks removes the lock files git left in the cache: a git
// killed mid-write (ferry stopped or killed, a call's context cancelled,
// a timeout) leaves its config.lock, packed-refs.lock or refs/….lock, and
// every later git write there fails with "File exists" until someone
// removes it by hand. It runs under fetchMu, where none can be live: every
// git that writes the cache runs under fetchMu, the data directory's lock
// keeps any other ferry out of it, and a git of a ferry that died was
// killed with it (dieWithParent).
func (r *Repo) clearStaleLocks() {
	remove := func(path string) {
		if err := os.Remove(path); err == nil {
			r.logger.Warn("removed a stale git lock from the cache (a git was killed mid-write)", "file", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			r.logger.Warn("cannot remove a stale git lock from the cache", "file", path, "err", err)
		}
	}
	for _, name := range []string{"config.lock", "packed-refs.lock", "HEAD.lock", "shallow.lock"} {
		if _, err := os.Lstat(filepath.Join(r.dir, name)); err == nil {
			remove(filepath.Join(r.dir, name))
		}
	}
	filepath.WalkDir(filepath.Join(r.dir, "refs"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".lock") {
			remove(path)
		}
		return nil
	})
}
