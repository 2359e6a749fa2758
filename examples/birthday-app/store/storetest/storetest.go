// Package storetest is the one test suite every birthday.Store engine
// passes: sqlite, postgres and mysql run it against real databases.
package storetest

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
)

// Store is a birthday.Store that can be closed.
type Store interface {
	birthday.Store
	io.Closer
}

// Opener opens a store on one database; opening it again opens the same
// database (and finds the migrations already applied).
type Opener func(ctx context.Context) (Store, error)

// Run runs the suite. newDB creates a fresh, empty database for one
// subtest and returns how to open it.
func Run(t *testing.T, newDB func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"PutThenGet", testPutThenGet},
		{"Upsert", testUpsert},
		{"NotFound", testNotFound},
		{"CaseSensitive", testCaseSensitive},
		{"Dates", testDates},
		{"ConcurrentUpserts", testConcurrentUpserts},
		{"ReadYourWrites", testReadYourWrites},
		{"ConcurrentReadYourWrites", testConcurrentReadYourWrites},
		{"ReopenKeepsDataAndMigrations", testReopen},
		{"ConcurrentOpen", testConcurrentOpen},
		{"Ping", testPing},
		{"ClosedFailsEveryLookup", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newDB(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustOpen(t *testing.T, open Opener) Store {
	t.Helper()
	s, err := open(ctx(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func date(t *testing.T, s string) birthday.Date {
	t.Helper()
	d, err := birthday.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func put(t *testing.T, s birthday.Store, name, dob string) {
	t.Helper()
	if err := s.PutUser(ctx(t), birthday.User{Name: name, DateOfBirth: date(t, dob)}); err != nil {
		t.Fatalf("PutUser(%s, %s) = %v", name, dob, err)
	}
}

func wantUser(t *testing.T, s birthday.Store, name, dob string) {
	t.Helper()
	u, err := s.User(ctx(t), name)
	if err != nil {
		t.Fatalf("User(%s) = %v, want %s", name, err, dob)
	}
	if u.Name != name || u.DateOfBirth.String() != dob {
		t.Fatalf("User(%s) = %s %s, want %s %s", name, u.Name, u.DateOfBirth, name, dob)
	}
}

func testPutThenGet(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	put(t, s, "alice", "1990-05-17")
	put(t, s, "bob", "1985-12-31")
	wantUser(t, s, "alice", "1990-05-17")
	wantUser(t, s, "bob", "1985-12-31")
}

func testUpsert(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	put(t, s, "alice", "1990-05-17")
	put(t, s, "alice", "1991-06-18")
	wantUser(t, s, "alice", "1991-06-18")
	put(t, s, "alice", "1991-06-18") // the same value again
	wantUser(t, s, "alice", "1991-06-18")
}

func testNotFound(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	put(t, s, "alice", "1990-05-17")
	for _, name := range []string{"bob", "alic", "alicee"} {
		_, err := s.User(ctx(t), name)
		if birthday.ErrorCode(err) != birthday.ENOTFOUND {
			t.Errorf("User(%s) = %v, want a %s error", name, err, birthday.ENOTFOUND)
		}
	}
}

func testCaseSensitive(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	put(t, s, "alice", "1990-05-17")
	put(t, s, "Alice", "2001-01-02")
	put(t, s, "ALICE", "2002-03-04")
	wantUser(t, s, "alice", "1990-05-17")
	wantUser(t, s, "Alice", "2001-01-02")
	wantUser(t, s, "ALICE", "2002-03-04")
	if _, err := s.User(ctx(t), "aLICE"); birthday.ErrorCode(err) != birthday.ENOTFOUND {
		t.Errorf("User(aLICE) = %v, want a %s error", err, birthday.ENOTFOUND)
	}
}

func testDates(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	long := strings.Repeat("x", birthday.MaxNameLen)
	dates := map[string]string{
		"earliest": birthday.Earliest.String(),
		"leapday":  "2000-02-29",
		"yearend":  "1999-12-31",
		"newyear":  "2000-01-01",
		long:       "1970-01-01",
		"before":   "1969-12-31",
		"late":     "9999-12-31",
	}
	for name, dob := range dates {
		put(t, s, name, dob)
	}
	for name, dob := range dates {
		wantUser(t, s, name, dob)
	}
}

// testConcurrentUpserts has writers race on shared and own users: none
// fails, and every user ends with a value one of its writers wrote.
func testConcurrentUpserts(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	const writers, rounds = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*2)
	for w := range writers {
		wg.Go(func() {
			own := fmt.Sprintf("user%c", 'a'+w)
			for r := range rounds {
				dob := birthday.Date{Year: 1950 + w, Month: time.Month(1 + r%12), Day: 1 + r}
				if err := s.PutUser(ctx(t), birthday.User{Name: "shared", DateOfBirth: dob}); err != nil {
					errs <- fmt.Errorf("writer %d: put shared: %w", w, err)
				}
				if err := s.PutUser(ctx(t), birthday.User{Name: own, DateOfBirth: dob}); err != nil {
					errs <- fmt.Errorf("writer %d: put %s: %w", w, own, err)
				}
				if _, err := s.User(ctx(t), "shared"); err != nil {
					errs <- fmt.Errorf("writer %d: get shared: %w", w, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	u, err := s.User(ctx(t), "shared")
	if err != nil {
		t.Fatalf("User(shared) = %v", err)
	}
	if y := u.DateOfBirth.Year; y < 1950 || y >= 1950+writers {
		t.Errorf("User(shared) = %s, want a date some writer wrote", u.DateOfBirth)
	}
	for w := range writers {
		// Each writer's own user ends with its last round's date.
		last := birthday.Date{Year: 1950 + w, Month: time.Month(1 + (rounds-1)%12), Day: rounds}
		wantUser(t, s, fmt.Sprintf("user%c", 'a'+w), last.String())
	}
}

// testReadYourWrites has two stores on one database, as two replicas:
// a GET on either after a PUT on either reads what the PUT wrote.
func testReadYourWrites(t *testing.T, open Opener) {
	replicas := []Store{mustOpen(t, open), mustOpen(t, open)}
	for i := range 20 {
		dob := birthday.Date{Year: 1960 + i, Month: time.Month(1 + i%12), Day: 1 + i}.String()
		put(t, replicas[i%2], "alice", dob)
		wantUser(t, replicas[i%2], "alice", dob)
		wantUser(t, replicas[(i+1)%2], "alice", dob)
	}
}

// testConcurrentReadYourWrites has many clients at once, each writing
// fresh dates of its own user through one of two stores on one database
// and reading them back through the other, with lookups of a user no one
// wrote in between: every read returns what its client last wrote, and
// the unknown user is never found. (Engines that gather concurrent reads
// into one query do so here, with reads of several users and of unknown
// ones in one query.)
func testConcurrentReadYourWrites(t *testing.T, open Opener) {
	replicas := []Store{mustOpen(t, open), mustOpen(t, open)}
	const clients, rounds = 32, 12
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds*2)
	for c := range clients {
		wg.Go(func() {
			name := "client" + strings.Repeat("x", c+1)
			for r := range rounds {
				u := birthday.User{Name: name, DateOfBirth: birthday.Date{Year: 1900 + c*3 + r%3, Month: time.Month(1 + r), Day: 1 + c%28}}
				if err := replicas[(c+r)%2].PutUser(ctx(t), u); err != nil {
					errs <- fmt.Errorf("client %d: put %s: %w", c, u.DateOfBirth, err)
					return
				}
				got, err := replicas[(c+r+1)%2].User(ctx(t), name)
				if err != nil || got != u {
					errs <- fmt.Errorf("client %d: User(%s) after PutUser(%s) = %v %v, want %s", c, name, u.DateOfBirth, got.DateOfBirth, err, u.DateOfBirth)
				}
				if _, err := replicas[r%2].User(ctx(t), "nobody"); birthday.ErrorCode(err) != birthday.ENOTFOUND {
					errs <- fmt.Errorf("client %d: User(nobody) = %v, want a %s error", c, err, birthday.ENOTFOUND)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// closedWithAlice opens a store, stores alice and closes it again.
func closedWithAlice(t *testing.T, open Opener) Store {
	t.Helper()
	s, err := open(ctx(t))
	if err != nil {
		t.Fatalf("first open: %v", err)
	}
	put(t, s, "alice", "1990-05-17")
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return s
}

func testReopen(t *testing.T, open Opener) {
	closedWithAlice(t, open)
	s2 := mustOpen(t, open) // the migrations are applied already
	wantUser(t, s2, "alice", "1990-05-17")
	put(t, s2, "bob", "1985-12-31")
	s3 := mustOpen(t, open) // and a store beside an open one
	wantUser(t, s3, "bob", "1985-12-31")
}

// testConcurrentOpen opens one fresh database from several goroutines at
// once, as replicas starting together do: each migration applies once and
// every opener succeeds.
func testConcurrentOpen(t *testing.T, open Opener) {
	const openers = 4
	stores := make([]Store, openers)
	errs := make([]error, openers)
	var wg sync.WaitGroup
	for i := range openers {
		wg.Go(func() { stores[i], errs[i] = open(ctx(t)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	put(t, stores[0], "alice", "1990-05-17")
	wantUser(t, stores[openers-1], "alice", "1990-05-17")
}

func testPing(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	if err := s.Ping(ctx(t)); err != nil {
		t.Errorf("Ping() = %v, want nil", err)
	}
}

// testClosed looks users up, concurrently, in a store that was closed:
// each lookup fails with an error, wrapped, never as not found, a stored
// user's as an unknown one's. (Engines that gather lookups into one
// query pass the query's error to every lookup of it.)
func testClosed(t *testing.T, open Opener) {
	s := closedWithAlice(t, open)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.User(ctx(t), []string{"alice", fmt.Sprintf("user%c", 'a'+i)}[i%2]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || birthday.ErrorCode(err) == birthday.ENOTFOUND || !strings.HasPrefix(err.Error(), "get user: ") {
			t.Errorf("lookup %d in a closed store = %v, want a get user: error", i, err)
		}
	}
}
