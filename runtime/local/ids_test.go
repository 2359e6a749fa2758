package local

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"
)

func TestEnvUID(t *testing.T) {
	dir := t.TempDir()
	slot := func(env string) int {
		h := fnv.New32a()
		h.Write([]byte(env))
		return int(h.Sum32() % idRange)
	}
	// Two names whose hashes share a slot.
	seen := map[int]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		n := fmt.Sprintf("env%d", i)
		if o, ok := seen[slot(n)]; ok {
			a, b = o, n
		}
		seen[slot(n)] = n
	}
	uid := func(env string) int {
		t.Helper()
		id, err := envUID(t.Context(), dir, env)
		if err != nil {
			t.Fatalf("envUID(%s): %v", env, err)
		}
		return id
	}
	ua, ub := uid(a), uid(b)
	if ua != idBase+slot(a) {
		t.Errorf("envUID(%s) = %d, want %d: base plus its hash", a, ua, idBase+slot(a))
	}
	if ub == ua || ub != idBase+(slot(b)+1)%idRange {
		t.Errorf("envUID(%s) = %d, colliding with %s's %d: want the next number", b, ub, a, ua)
	}
	// Recorded: the same on every call, from the file.
	if uid(b) != ub || uid(a) != ua {
		t.Errorf("envUID changed between calls")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "runc", "ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ids map[string]int
	if err := json.Unmarshal(raw, &ids); err != nil || ids[a] != ua || ids[b] != ub {
		t.Errorf("ids.json = %s (%v), want %s: %d and %s: %d", raw, err, a, ua, b, ub)
	}
	// A damaged record is an error, not a fresh start that could give two
	// environments one uid.
	os.WriteFile(filepath.Join(dir, "runc", "ids.json"), []byte("{"), 0o600)
	if _, err := envUID(t.Context(), dir, "other"); err == nil {
		t.Errorf("envUID with a damaged ids.json = nil error")
	}
}
