package birthday

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP server maps each to one status.
const (
	EINVALID     = "invalid"     // bad input: 400
	ENOTFOUND    = "not_found"   // no such user: 404
	EUNAVAILABLE = "unavailable" // the database failed: 503
	EINTERNAL    = "internal"    // anything else: 500
)

// Error is an error whose Message is safe to show a user. Err, when set,
// is the cause, kept for the logs only.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode is the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage is the user-safe message of err: the message of its *Error,
// or a generic text for any other error.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "internal error"
}
