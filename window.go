package ferry

import (
	"fmt"
	"strings"
	"time"
)

// Window is a recurring time when an environment takes promotions
// (`windows:` in ferry.yaml): on Days, from From to To past midnight, on
// the wall clock of Location (so a window follows its zone's daylight
// saving time).
type Window struct {
	// Days holds the weekdays the window opens on, indexed by
	// time.Weekday.
	Days [7]bool
	// From and To are offsets from midnight, From < To ≤ 24h.
	From, To time.Duration
	Location *time.Location
}

// String renders w as ferry.yaml writes it: "Mon-Thu 09:00-16:00 Europe/Berlin".
func (w Window) String() string {
	return fmt.Sprintf("%s %s-%s %s", DaysString(w.Days), clock(w.From), clock(w.To), w.Location)
}

// Freeze is a dated period when an environment takes no promotions
// (`freeze:` in ferry.yaml): from From (inclusive) to To (exclusive).
type Freeze struct {
	From, To time.Time
	Reason   string
}

var weekdayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// ParseDays reads a set of weekdays: names (Mon … Sun), ranges (Mon-Thu;
// Fri-Mon wraps over the weekend), separated by commas.
func ParseDays(s string) ([7]bool, error) {
	var days [7]bool
	day := func(name string) (int, error) {
		for i, n := range weekdayNames {
			if strings.EqualFold(n, strings.TrimSpace(name)) {
				return i, nil
			}
		}
		return 0, fmt.Errorf("unknown day %q (want Mon, Tue, Wed, Thu, Fri, Sat or Sun)", strings.TrimSpace(name))
	}
	if strings.TrimSpace(s) == "" {
		return days, fmt.Errorf("no days (want e.g. Mon-Fri or Mon,Wed)")
	}
	for _, part := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, err := day(from)
		if err != nil {
			return days, err
		}
		b := a
		if isRange {
			if b, err = day(to); err != nil {
				return days, err
			}
		}
		for i := a; ; i = (i + 1) % 7 {
			days[i] = true
			if i == b {
				break
			}
		}
	}
	return days, nil
}

// DaysString renders a set of weekdays, Monday first, with ranges.
func DaysString(days [7]bool) string {
	var parts []string
	order := []int{1, 2, 3, 4, 5, 6, 0}
	for i := 0; i < len(order); {
		if !days[order[i]] {
			i++
			continue
		}
		j := i
		for j+1 < len(order) && days[order[j+1]] {
			j++
		}
		if j > i {
			parts = append(parts, weekdayNames[order[i]]+"-"+weekdayNames[order[j]])
		} else {
			parts = append(parts, weekdayNames[order[i]])
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// clock renders an offset from midnight as HH:MM.
func clock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60)
}
