package birthday

// MaxNameLen is the longest accepted username, in letters.
const MaxNameLen = 64

// Earliest is the earliest accepted date of birth. Every engine stores it
// (MySQL's DATE starts at 1000-01-01) and no one alive was born before it.
var Earliest = Date{Year: 1900, Month: 1, Day: 1}

// ValidateName checks that name is 1–MaxNameLen ASCII letters (A–Z, a–z).
// The error has code EINVALID and names the problem.
func ValidateName(name string) error {
	if name == "" {
		return Errorf(EINVALID, "username must not be empty")
	}
	if len(name) > MaxNameLen {
		return Errorf(EINVALID, "username must be at most %d letters, got %d bytes", MaxNameLen, len(name))
	}
	for i := range len(name) {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return Errorf(EINVALID, "username %q must contain only the letters A-Z and a-z", name)
		}
	}
	return nil
}

// ValidateDateOfBirth checks that dob lies strictly before today and not
// before Earliest. The error has code EINVALID and names the problem.
func ValidateDateOfBirth(dob, today Date) error {
	if !dob.Valid() {
		return Errorf(EINVALID, "dateOfBirth %s is not a real calendar date", dob)
	}
	if !dob.Before(today) {
		return Errorf(EINVALID, "dateOfBirth %s must be before today (%s)", dob, today)
	}
	if dob.Before(Earliest) {
		return Errorf(EINVALID, "dateOfBirth %s must not be before %s", dob, Earliest)
	}
	return nil
}
