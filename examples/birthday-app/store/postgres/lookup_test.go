package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/testdb"
)

func TestSelectUsersSQL(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{1, "SELECT username, date_of_birth FROM users WHERE username IN ($1)"},
		{2, "SELECT username, date_of_birth FROM users WHERE username IN ($1, $2)"},
		{4, "SELECT username, date_of_birth FROM users WHERE username IN ($1, $2, $3, $4)"},
	}
	for _, tt := range tests {
		if got := selectUsersSQL(tt.n); got != tt.want {
			t.Errorf("selectUsersSQL(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestDatesOfBirth queries batches of every size class, with repeated
// and unknown names, against PostgreSQL.
func TestDatesOfBirth(t *testing.T) {
	s, err := Open(t.Context(), testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	known := map[string]string{}
	for i := range 40 {
		name := "user" + strings.Repeat("a", i+1)
		dob := birthday.Date{Year: 1950 + i, Month: time.Month(1 + i%12), Day: 1 + i%28}
		if err := s.PutUser(t.Context(), birthday.User{Name: name, DateOfBirth: dob}); err != nil {
			t.Fatal(err)
		}
		known[name] = dob.String()
	}
	names := func(from, to int, unknown ...string) []string {
		var ns []string
		for i := from; i < to; i++ {
			ns = append(ns, "user"+strings.Repeat("a", i+1))
		}
		return append(ns, unknown...)
	}
	tests := []struct {
		name  string
		names []string
	}{
		{"one", names(0, 1)},
		{"one unknown", []string{"nobody"}},
		{"repeated", []string{"usera", "usera", "usera"}},
		{"three: padded to 4", names(0, 2, "nobody")},
		{"five: padded to 8", names(3, 8)},
		{"64, unknown among them", append(names(0, 40, "nobody", "Usera"), names(0, 22)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.datesOfBirth(t.Context(), tt.names)
			if err != nil {
				t.Fatalf("datesOfBirth(%d names) = %v", len(tt.names), err)
			}
			want := map[string]string{}
			for _, n := range tt.names {
				if dob, ok := known[n]; ok {
					want[n] = dob
				}
			}
			if len(got) != len(want) {
				t.Errorf("datesOfBirth(%q) has %d users, want %d", tt.names, len(got), len(want))
			}
			for n, dob := range want {
				if d, ok := got[n]; !ok || birthday.DateOf(d).String() != dob {
					t.Errorf("datesOfBirth(…)[%s] = %v %v, want %s", n, d, ok, dob)
				}
			}
		})
	}
	if _, err := s.datesOfBirth(t.Context(), make([]string, lookupBatchSize+1)); err == nil {
		t.Errorf("datesOfBirth(%d names) = nil error, want one", lookupBatchSize+1)
	}
}
