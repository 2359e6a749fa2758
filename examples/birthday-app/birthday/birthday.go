// Package birthday is the domain of birthday-app: users and their dates of
// birth, the rules that make them valid, and the greeting that counts the
// days to the next birthday.
//
// The package is plain Go with no I/O. Storage engines (store/sqlite,
// store/postgres, store/mysql) implement [Store]; the HTTP server calls a
// [Service]. "Today" always comes from an injected clock, so every rule can
// be tested for any day of any year.
package birthday

import (
	"context"
	"fmt"
	"time"
)

// User is a person the service greets.
type User struct {
	// Name is 1–[MaxNameLen] ASCII letters; it is case-sensitive
	// ("alice" and "Alice" are two users).
	Name        string
	DateOfBirth Date
}

// Store keeps users. Implementations must be safe for concurrent use.
type Store interface {
	// PutUser inserts the user or replaces the date of birth of the user
	// with the same name.
	PutUser(ctx context.Context, u User) error
	// User returns the user with the name, or an error with code
	// ENOTFOUND when there is none.
	User(ctx context.Context, name string) (User, error)
	// Ping checks that the store can serve requests.
	Ping(ctx context.Context) error
}

// Service carries out the API's two operations: saving a user's date of
// birth and greeting them.
type Service struct {
	store Store
	now   func() time.Time
	loc   *time.Location
}

// NewService returns a service over store. now is the clock; "today" is
// now() seen in loc (UTC when loc is nil).
func NewService(store Store, now func() time.Time, loc *time.Location) *Service {
	if loc == nil {
		loc = time.UTC
	}
	return &Service{store: store, now: now, loc: loc}
}

// Today is the current date in the service's time zone.
func (s *Service) Today() Date { return DateOf(s.now().In(s.loc)) }

// Save validates the name and the date of birth (as sent, "YYYY-MM-DD")
// and stores them. Invalid input returns an EINVALID error and stores
// nothing; a store failure returns an EUNAVAILABLE error whose cause is
// kept for the logs.
func (s *Service) Save(ctx context.Context, name, dateOfBirth string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	dob, err := ParseDate(dateOfBirth)
	if err != nil {
		return err
	}
	if err := ValidateDateOfBirth(dob, s.Today()); err != nil {
		return err
	}
	if err := s.store.PutUser(ctx, User{Name: name, DateOfBirth: dob}); err != nil {
		return unavailable(fmt.Errorf("put user %s: %w", name, err))
	}
	return nil
}

// Greet returns the greeting for the user with the name: ENOTFOUND when
// there is none, EINVALID for an invalid name.
func (s *Service) Greet(ctx context.Context, name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	u, err := s.store.User(ctx, name)
	if ErrorCode(err) == ENOTFOUND {
		return "", err
	}
	if err != nil {
		return "", unavailable(fmt.Errorf("get user %s: %w", name, err))
	}
	return Greeting(u.Name, u.DateOfBirth, s.Today()), nil
}

// unavailable marks a store failure: the database is down, slow or
// refusing. Users see a safe message; the cause stays in the logs.
func unavailable(cause error) error {
	return &Error{Code: EUNAVAILABLE, Message: "the database is unavailable, try again later", Err: cause}
}

// Greeting is the message for a user born on dob, on the day today.
func Greeting(name string, dob, today Date) string {
	switch n := DaysUntilBirthday(dob, today); n {
	case 0:
		return fmt.Sprintf("Hello, %s! Happy birthday!", name)
	case 1:
		return fmt.Sprintf("Hello, %s! Your birthday is in 1 day", name)
	default:
		return fmt.Sprintf("Hello, %s! Your birthday is in %d days", name, n)
	}
}

// DaysUntilBirthday is the number of days from today to the next birthday
// of someone born on dob: 0 on the birthday itself, at most 365.
//
// Someone born on 29 February celebrates on 28 February in years that are
// not leap years (the birthday stays in February, and comes one day
// before the missing one rather than after it).
func DaysUntilBirthday(dob, today Date) int {
	next := dob.birthdayIn(today.Year)
	if next.Before(today) {
		next = dob.birthdayIn(today.Year + 1)
	}
	return next.days() - today.days()
}
