package birthday_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
)

func date(t *testing.T, s string) birthday.Date {
	t.Helper()
	d, err := birthday.ParseDate(s)
	if err != nil {
		t.Fatalf("ParseDate(%q): %v", s, err)
	}
	return d
}

func TestDaysUntilBirthday(t *testing.T) {
	tests := []struct {
		dob, today string
		want       int
	}{
		{"1990-05-17", "2025-05-17", 0},   // the day itself
		{"1990-05-17", "2025-05-16", 1},   // the day before
		{"1990-05-17", "2025-05-18", 364}, // the day after: next year, 2026 not leap
		{"1990-01-01", "2025-12-31", 1},   // across the year end
		{"1990-12-31", "2025-01-01", 364}, // Dec 31 seen from Jan 1
		{"1990-12-31", "2025-12-31", 0},
		{"1990-01-01", "2026-01-01", 0},
		{"1990-03-01", "2024-02-28", 2},   // leap year: Feb 29 lies between
		{"1990-03-01", "2023-02-28", 1},   // not a leap year
		{"1990-02-28", "2024-02-29", 365}, // from a leap day to next Feb 28
		{"1990-05-17", "2024-05-18", 364}, // 2025 is not leap
		{"1990-05-17", "2023-05-18", 365}, // the year ahead holds Feb 29, 2024
		{"2000-02-29", "2024-02-29", 0},   // leap day in a leap year
		{"2000-02-29", "2024-02-28", 1},
		{"2000-02-29", "2025-02-28", 0}, // celebrated on Feb 28 in common years
		{"2000-02-29", "2025-02-27", 1},
		{"2000-02-29", "2025-03-01", 364}, // next is Feb 28, 2026
		{"2000-02-29", "2027-03-01", 365}, // next is Feb 29, 2028
		{"2000-02-29", "2023-03-01", 365}, // next is Feb 29, 2024
		{"2000-02-29", "2024-03-01", 364}, // next is Feb 28, 2025
		{"2000-02-29", "2100-02-28", 0},   // 2100 is not a leap year
		{"2000-02-29", "2000-03-01", 364}, // next is Feb 28, 2001
		{"1999-12-31", "2000-01-01", 365}, // 2000 is a leap year
	}
	for _, tt := range tests {
		got := birthday.DaysUntilBirthday(date(t, tt.dob), date(t, tt.today))
		if got != tt.want {
			t.Errorf("DaysUntilBirthday(%s, %s) = %d, want %d", tt.dob, tt.today, got, tt.want)
		}
	}
}

// isBirthday is an independent statement of the rule: the same month and
// day, or Feb 28 of a common year for someone born on Feb 29.
func isBirthday(dob, day birthday.Date) bool {
	if dob.Month == day.Month && dob.Day == day.Day {
		return true
	}
	leap := day.AddDays(1).Day == 29 // day is Feb 28 and Feb 29 follows
	return dob.Month == time.February && dob.Day == 29 &&
		day.Month == time.February && day.Day == 28 && !leap
}

// TestDaysUntilBirthdayEveryDay checks every "today" of 2023–2028 (two
// leap years, year ends between) against every birth day of the leap year
// 2000. The expected count comes from walking the calendar backwards: it
// is 0 on a celebration day and one more than the next day's count on any
// other day.
func TestDaysUntilBirthdayEveryDay(t *testing.T) {
	first, last := date(t, "2023-01-01"), date(t, "2028-12-31")
	end := last.AddDays(365) // far enough that every count is anchored
	var days []birthday.Date
	for d := first; !end.Before(d); d = d.AddDays(1) {
		days = append(days, d)
	}
	checked := 0
	for dob := date(t, "2000-01-01"); dob.Year == 2000; dob = dob.AddDays(1) {
		want := make([]int, len(days))
		next := -1 // unknown until the first celebration seen from the end
		for i := len(days) - 1; i >= 0; i-- {
			switch {
			case isBirthday(dob, days[i]):
				next = 0
			case next >= 0:
				next++
			}
			want[i] = next
		}
		for i, today := range days {
			if last.Before(today) {
				break
			}
			if got := birthday.DaysUntilBirthday(dob, today); got != want[i] || got < 0 || got > 365 {
				t.Fatalf("DaysUntilBirthday(%s, %s) = %d, want %d", dob, today, got, want[i])
			}
			checked++
		}
	}
	if want := (365*4 + 366*2) * 366; checked != want {
		t.Fatalf("checked %d pairs, want %d", checked, want)
	}
}

func TestGreeting(t *testing.T) {
	tests := []struct {
		name, dob, today, want string
	}{
		{"alice", "1990-05-17", "2025-05-17", "Hello, alice! Happy birthday!"},
		{"Bob", "1990-05-17", "2025-05-16", "Hello, Bob! Your birthday is in 1 day"},
		{"Bob", "1990-05-17", "2025-05-15", "Hello, Bob! Your birthday is in 2 days"},
		{"Bob", "1990-01-01", "2025-12-31", "Hello, Bob! Your birthday is in 1 day"},
		{"Leap", "2000-02-29", "2025-02-28", "Hello, Leap! Happy birthday!"},
		{"Carol", "1990-05-17", "2025-05-18", "Hello, Carol! Your birthday is in 364 days"},
	}
	for _, tt := range tests {
		got := birthday.Greeting(tt.name, date(t, tt.dob), date(t, tt.today))
		if got != tt.want {
			t.Errorf("Greeting(%s, %s, %s) = %q, want %q", tt.name, tt.dob, tt.today, got, tt.want)
		}
	}
}

func TestParseDate(t *testing.T) {
	good := map[string]birthday.Date{
		"2001-02-28": {Year: 2001, Month: 2, Day: 28},
		"2000-02-29": {Year: 2000, Month: 2, Day: 29},
		"1999-12-31": {Year: 1999, Month: 12, Day: 31},
		"0001-01-01": {Year: 1, Month: 1, Day: 1},
	}
	for s, want := range good {
		got, err := birthday.ParseDate(s)
		if err != nil || got != want {
			t.Errorf("ParseDate(%q) = %v, %v, want %v, nil", s, got, err, want)
		}
		if got.String() != s {
			t.Errorf("ParseDate(%q).String() = %q, want %q", s, got.String(), s)
		}
	}
	bad := map[string]string{
		"":            "YYYY-MM-DD",
		"2001-2-3":    "YYYY-MM-DD",
		"01-02-2001":  "YYYY-MM-DD",
		"2001/02/03":  "YYYY-MM-DD",
		"2001-02-03T": "YYYY-MM-DD",
		" 2001-02-03": "YYYY-MM-DD",
		"2001-02-3x":  "YYYY-MM-DD",
		"+001-02-03":  "YYYY-MM-DD",
		"２００１-02-03":  "YYYY-MM-DD",
		"2001-02-30":  "not a real calendar date",
		"2001-02-29":  "not a real calendar date",
		"1900-02-29":  "not a real calendar date",
		"2001-13-01":  "not a real calendar date",
		"2001-00-10":  "not a real calendar date",
		"2001-04-31":  "not a real calendar date",
		"2001-01-00":  "not a real calendar date",
	}
	for s, want := range bad {
		_, err := birthday.ParseDate(s)
		if birthday.ErrorCode(err) != birthday.EINVALID || !contains(birthday.ErrorMessage(err), want) {
			t.Errorf("ParseDate(%q) error = %v, want %s error containing %q", s, err, birthday.EINVALID, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestValidateName(t *testing.T) {
	long := make([]byte, birthday.MaxNameLen)
	for i := range long {
		long[i] = 'a'
	}
	for _, name := range []string{"a", "Z", "alice", "McDonald", string(long)} {
		if err := birthday.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
	bad := map[string]string{
		"":                     "must not be empty",
		string(long) + "a":     "at most 64 letters",
		"alice1":               "only the letters",
		"al ice":               "only the letters",
		"al-ice":               "only the letters",
		"alice.":               "only the letters",
		"al_ice":               "only the letters",
		"Jürgen":               "only the letters",
		"Ωmega":                "only the letters",
		"ａｌｉｃｅ":                "only the letters",
		"alice\n":              "only the letters",
		"alice\x00":            "only the letters",
		"../etc":               "only the letters",
		"robert'); DROP TABLE": "only the letters",
	}
	for name, want := range bad {
		err := birthday.ValidateName(name)
		if birthday.ErrorCode(err) != birthday.EINVALID || !contains(birthday.ErrorMessage(err), want) {
			t.Errorf("ValidateName(%q) = %v, want %s error containing %q", name, err, birthday.EINVALID, want)
		}
	}
}

func TestValidateDateOfBirth(t *testing.T) {
	today := date(t, "2025-03-01")
	tests := []struct {
		dob  string
		want string // "" for valid
	}{
		{"2025-02-28", ""},
		{"1900-01-01", ""},
		{"2024-02-29", ""},
		{"2025-03-01", "must be before today (2025-03-01)"},
		{"2025-03-02", "must be before today"},
		{"2999-01-01", "must be before today"},
		{"1899-12-31", "must not be before 1900-01-01"},
		{"0001-01-01", "must not be before 1900-01-01"},
	}
	for _, tt := range tests {
		err := birthday.ValidateDateOfBirth(date(t, tt.dob), today)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("ValidateDateOfBirth(%s, %s) = %v, want nil", tt.dob, today, err)
		case tt.want != "" && (birthday.ErrorCode(err) != birthday.EINVALID || !contains(birthday.ErrorMessage(err), tt.want)):
			t.Errorf("ValidateDateOfBirth(%s, %s) = %v, want %s error containing %q", tt.dob, today, err, birthday.EINVALID, tt.want)
		}
	}
	bogus := birthday.Date{Year: 2001, Month: 2, Day: 30}
	if err := birthday.ValidateDateOfBirth(bogus, today); birthday.ErrorCode(err) != birthday.EINVALID {
		t.Errorf("ValidateDateOfBirth(%v, %s) = %v, want %s error", bogus, today, err, birthday.EINVALID)
	}
}

// memStore is an in-memory Store for the service's own tests; the real
// engines are proven by store/storetest.
type memStore struct {
	mu    sync.Mutex
	users map[string]birthday.User
	err   error // returned by every call when set
}

func (m *memStore) PutUser(_ context.Context, u birthday.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.users[u.Name] = u
	return nil
}

func (m *memStore) User(_ context.Context, name string) (birthday.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return birthday.User{}, m.err
	}
	u, ok := m.users[name]
	if !ok {
		return birthday.User{}, birthday.Errorf(birthday.ENOTFOUND, "no user %q", name)
	}
	return u, nil
}

func (m *memStore) Ping(context.Context) error { return m.err }

func TestServiceToday(t *testing.T) {
	// 23:30 UTC on Dec 31 is already Jan 1 in Tokyo and still Dec 31 in New York.
	now := time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	for _, tt := range []struct {
		loc  *time.Location
		want string
	}{{nil, "2025-12-31"}, {time.UTC, "2025-12-31"}, {tokyo, "2026-01-01"}} {
		s := birthday.NewService(&memStore{users: map[string]birthday.User{}}, clock, tt.loc)
		if got := s.Today().String(); got != tt.want {
			t.Errorf("Today() in %v = %s, want %s", tt.loc, got, tt.want)
		}
	}
}

func TestService(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 5, 16, 12, 0, 0, 0, time.UTC)
	store := &memStore{users: map[string]birthday.User{}}
	s := birthday.NewService(store, func() time.Time { return now }, time.UTC)

	if err := s.Save(ctx, "alice", "1990-05-17"); err != nil {
		t.Fatalf("Save(alice, 1990-05-17) = %v, want nil", err)
	}
	if got, err := s.Greet(ctx, "alice"); err != nil || got != "Hello, alice! Your birthday is in 1 day" {
		t.Errorf("Greet(alice) = %q, %v, want the 1-day greeting", got, err)
	}
	now = now.Add(24 * time.Hour)
	if got, err := s.Greet(ctx, "alice"); err != nil || got != "Hello, alice! Happy birthday!" {
		t.Errorf("Greet(alice) the next day = %q, %v, want happy birthday", got, err)
	}

	// Bad input stores nothing and keeps what was there.
	for _, in := range []struct{ name, dob string }{
		{"alice", "2025-05-17"}, // today
		{"alice", "2026-01-01"}, // future
		{"alice", "2001-02-30"},
		{"alice", "17.05.1990"},
		{"bob1", "1990-01-01"},
		{"", "1990-01-01"},
	} {
		if err := s.Save(ctx, in.name, in.dob); birthday.ErrorCode(err) != birthday.EINVALID {
			t.Errorf("Save(%q, %q) = %v, want %s", in.name, in.dob, err, birthday.EINVALID)
		}
	}
	if u := store.users["alice"]; u.DateOfBirth.String() != "1990-05-17" || len(store.users) != 1 {
		t.Errorf("after bad input the store holds %v, want only alice 1990-05-17", store.users)
	}

	if _, err := s.Greet(ctx, "nobody"); birthday.ErrorCode(err) != birthday.ENOTFOUND {
		t.Errorf("Greet(nobody) = %v, want %s", err, birthday.ENOTFOUND)
	}
	if _, err := s.Greet(ctx, "no body"); birthday.ErrorCode(err) != birthday.EINVALID {
		t.Errorf("Greet(no body) = %v, want %s", err, birthday.EINVALID)
	}

	// A failing store is "unavailable", with the cause kept but not shown.
	cause := errors.New("dial tcp 10.0.0.7:5432: connection refused")
	store.err = cause
	for _, err := range []error{
		s.Save(ctx, "alice", "1990-05-17"),
		func() error { _, err := s.Greet(ctx, "alice"); return err }(),
	} {
		if birthday.ErrorCode(err) != birthday.EUNAVAILABLE || !errors.Is(err, cause) {
			t.Errorf("with the store down: %v, want %s wrapping the cause", err, birthday.EUNAVAILABLE)
		}
		if msg := birthday.ErrorMessage(err); contains(msg, "10.0.0.7") {
			t.Errorf("ErrorMessage(%v) = %q, must not show the cause", err, msg)
		}
	}
}
