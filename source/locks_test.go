package source

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStaleLocks: a git killed mid-write leaves its lock file in the
// cache; the next write (a fetch, a tag, a ref moved) goes on instead of
// failing with "File exists" for good, and removes the lock.
func TestStaleLocks(t *testing.T) {
	for _, lock := range []string{"config.lock", "packed-refs.lock", "HEAD.lock", "refs/heads/master.lock", "refs/tags/env/dev.lock"} {
		t.Run(lock, func(t *testing.T) {
			t.Parallel()
			h := newHistory(t)
			r := fetched(t, h.up.bare)
			path := filepath.Join(r.dir, lock)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			// The URL changes, so the fetch writes config as a changed
			// configuration does.
			r.remote = fileURL(h.up.bare)
			c4 := h.up.commit("fourth", map[string]string{"x": "4"})
			h.up.push()
			if err := r.Fetch(t.Context()); err != nil {
				t.Fatalf("Fetch with a stale %s: %v", lock, err)
			}
			if got, err := r.Head(t.Context(), "master"); got != c4 || err != nil {
				t.Errorf("Head(master) after the fetch = %s, %v; want %s", got, err, c4)
			}
			if err := r.SetRef(t.Context(), "refs/tags/env/dev", c4, ""); err != nil {
				t.Errorf("SetRef after a stale %s: %v", lock, err)
			}
			if _, err := os.Lstat(path); err == nil {
				t.Errorf("%s is still in the cache", lock)
			}
		})
	}
}
