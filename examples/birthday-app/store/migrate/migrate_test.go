package migrate_test

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ferryhq/ferry/examples/birthday-app/store/migrate"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_more.sql":  {Data: []byte("two")},
		"m/0010_last.sql":  {Data: []byte("ten")},
		"m/0001_first.sql": {Data: []byte("one")},
	}
	ms, err := migrate.Load(fsys, "m")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name+"="+m.SQL)
	}
	want := []string{"0001_first.sql=one", "0002_more.sql=two", "0010_last.sql=ten"}
	if !slices.Equal(got, want) {
		t.Errorf("Load = %v, want %v", got, want)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"no number":   {"m/first.sql": {}},
		"zero":        {"m/0000_x.sql": {}},
		"not sql":     {"m/0001_x.txt": {}},
		"duplicate":   {"m/0001_a.sql": {}, "m/001_b.sql": {}},
		"missing dir": {"n/0001_a.sql": {}},
	} {
		if _, err := migrate.Load(fsys, "m"); err == nil {
			t.Errorf("Load(%s) = nil error, want an error", name)
		}
	}
}

func TestStatements(t *testing.T) {
	sql := `-- the users
CREATE TABLE a (
	x INT -- inline comment stays
);

CREATE INDEX b ON a (x);
-- trailing comment
`
	got := migrate.Statements(sql)
	if len(got) != 2 || !strings.HasPrefix(got[0], "CREATE TABLE a (") || !strings.HasSuffix(got[0], ")") || got[1] != "CREATE INDEX b ON a (x)" {
		t.Errorf("Statements = %q, want the CREATE TABLE and the CREATE INDEX", got)
	}
}
