package ledger

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"sync"
)

// Migration is one numbered SQL script of an engine's schema. Engines embed
// theirs (migrations/NNN_what.sql), apply the pending ones in order inside
// one transaction when they open, and record each in schema_migrations.
// Later features add files; applied files are never edited.
type Migration struct {
	Version int    // from the file name: 001_builds.sql is version 1
	Name    string // the file name
	SQL     string
}

var migrationName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9]+)_[a-z0-9_]+\.sql$`) })

// ReadMigrations returns the migrations in the root of fsys ordered by
// version. Every .sql file must be named NNN_what.sql with a version of its
// own; other files are ignored.
func ReadMigrations(fsys fs.FS) ([]Migration, error) {
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, name := range files {
		m := migrationName().FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration %s: name is not NNN_what.sql", name)
		}
		v, err := strconv.Atoi(m[1])
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: version must be a positive number", name)
		}
		if other, ok := seen[v]; ok {
			return nil, fmt.Errorf("migrations %s and %s have the same version %d", other, name, v)
		}
		seen[v] = name
		sql, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(sql)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("read migrations: no NNN_what.sql files")
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	return ms, nil
}

// Pending returns the migrations of all that are not in applied (version →
// file name, as recorded in schema_migrations), in order. It refuses a
// database that records a version this ferry does not know (written by a
// newer ferry) or a known version under another name (history rewritten),
// since running against either could corrupt the ledger.
func Pending(all []Migration, applied map[int]string) ([]Migration, error) {
	known := make(map[int]string, len(all))
	for _, m := range all {
		known[m.Version] = m.Name
	}
	for v, name := range applied {
		want, ok := known[v]
		if !ok {
			return nil, fmt.Errorf("ledger schema has migration %s, unknown to this ferry: upgrade ferry", name)
		}
		if want != name {
			return nil, fmt.Errorf("ledger schema migration %d was applied as %s, this ferry has %s", v, name, want)
		}
	}
	var pending []Migration
	for _, m := range all {
		if _, ok := applied[m.Version]; !ok {
			pending = append(pending, m)
		}
	}
	return pending, nil
}
