// Package migrate reads a storage engine's embedded migrations. Each engine
// keeps its own readable SQL in files named NNNN_description.sql and
// applies them itself, in order of NNNN, under its own lock; this package
// only loads and orders the files and splits them into statements.
package migrate

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one schema change.
type Migration struct {
	Version int    // NNNN, unique and increasing
	Name    string // the file name
	SQL     string
}

// Load returns the migrations in dir of fsys, ordered by version. It
// rejects names not of the form NNNN_description.sql and duplicate
// versions.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(prefix)
		if e.IsDir() || !ok || err != nil || v <= 0 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %s: name is not NNNN_description.sql", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].Name, ms[i].Name, ms[i].Version)
		}
	}
	return ms, nil
}

// Statements splits sql into statements at semicolons that end a line,
// dropping "--" comment lines and empty statements. It is meant for the
// plain DDL of migrations, for engines whose driver runs one statement
// at a time; it does not parse string literals.
func Statements(sql string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for line := range strings.Lines(sql) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, ";"); ok {
			cur.WriteString(s)
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return out
}
