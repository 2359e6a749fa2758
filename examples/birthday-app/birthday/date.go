package birthday

import (
	"fmt"
	"time"
)

// Date is a calendar date without a time of day or a time zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf is the date of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{Year: y, Month: m, Day: d}
}

// ParseDate parses s in the form YYYY-MM-DD (four-digit year, two-digit
// month and day) and checks that the date exists. Errors have code
// EINVALID and name the problem.
func ParseDate(s string) (Date, error) {
	if !dateShape(s) {
		return Date{}, Errorf(EINVALID, "dateOfBirth %q is not a date in YYYY-MM-DD format", s)
	}
	d := Date{
		Year:  atoi(s[0:4]),
		Month: time.Month(atoi(s[5:7])),
		Day:   atoi(s[8:10]),
	}
	if !d.Valid() {
		return Date{}, Errorf(EINVALID, "dateOfBirth %q is not a real calendar date", s)
	}
	return d, nil
}

// dateShape reports whether s is "DDDD-DD-DD" with ASCII digits.
func dateShape(s string) bool {
	if len(s) != len("2006-01-02") {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		default:
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

func atoi(s string) int {
	n := 0
	for i := range len(s) {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// Valid reports whether d exists in the proleptic Gregorian calendar.
func (d Date) Valid() bool {
	return d.Month >= time.January && d.Month <= time.December &&
		d.Day >= 1 && d.Day <= daysIn(d.Month, d.Year)
}

// String formats d as YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day) }

// Time is midnight UTC at the start of d.
func (d Date) Time() time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC) }

// Before reports whether d comes before e.
func (d Date) Before(e Date) bool { return d.days() < e.days() }

// AddDays is the date n days after d (before it for negative n).
func (d Date) AddDays(n int) Date { return DateOf(d.Time().AddDate(0, 0, n)) }

// days counts days since 1970-01-01.
func (d Date) days() int { return int(d.Time().Unix() / (24 * 60 * 60)) }

// birthdayIn is the day in year on which someone born on d celebrates.
func (d Date) birthdayIn(year int) Date {
	if d.Month == time.February && d.Day == 29 && !isLeap(year) {
		return Date{Year: year, Month: time.February, Day: 28}
	}
	return Date{Year: year, Month: d.Month, Day: d.Day}
}

func isLeap(year int) bool { return year%4 == 0 && (year%100 != 0 || year%400 == 0) }

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if isLeap(year) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
