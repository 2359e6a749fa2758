package ferry

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes. HTTPStatus maps each to one HTTP status; the message of an
// *Error is safe to show a user, while its cause and any context wrapped
// around it stay in the logs.
const (
	ECONFLICT     = "conflict"
	EINTERNAL     = "internal"
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	EUNAVAILABLE  = "unavailable"
	// EMETHOD is a request with a method its path has no route for.
	EMETHOD = "method_not_allowed"
	// ETOOLARGE is a request body over the limit.
	ETOOLARGE = "too_large"
)

// Error is an error a user may see: Message is a sentence safe to show.
// Err, its cause when it has one, is not: Error includes it, for the
// logs; ErrorMessage does not.
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

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the code and a formatted message. The
// message is shown to users: never format an internal error into it;
// Wrap keeps one as the cause instead.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the code and a formatted message, safe to
// show, whose cause is err: the logs see it, users do not.
func Wrap(err error, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of err: the message of its
// *Error, or a generic text for internal errors.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "internal error"
}

// ErrorHidden reports whether err says more than ErrorMessage shows: it
// is internal, its *Error has a cause, or context is wrapped around that
// *Error. Whoever shows a user ErrorMessage(err) logs such an err whole.
func ErrorHidden(err error) bool {
	if err == nil {
		return false
	}
	e, ok := errors.AsType[*Error](err)
	return !ok || e.Err != nil || e != err
}

// HTTPStatus is the HTTP status every ferry server part (the API, the
// webhooks, /metrics, the dashboard) answers err with: one per code.
func HTTPStatus(err error) int {
	switch ErrorCode(err) {
	case EINVALID:
		return http.StatusBadRequest
	case EUNAUTHORIZED:
		return http.StatusUnauthorized
	case EFORBIDDEN:
		return http.StatusForbidden
	case ENOTFOUND:
		return http.StatusNotFound
	case EMETHOD:
		return http.StatusMethodNotAllowed
	case ECONFLICT:
		return http.StatusConflict
	case ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
