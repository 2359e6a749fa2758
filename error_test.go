package ferry

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{Errorf(EINVALID, "bad"), http.StatusBadRequest},
		{Errorf(EUNAUTHORIZED, "who"), http.StatusUnauthorized},
		{Errorf(EFORBIDDEN, "no"), http.StatusForbidden},
		{Errorf(ENOTFOUND, "gone"), http.StatusNotFound},
		{Errorf(ECONFLICT, "busy"), http.StatusConflict},
		{Errorf(EMETHOD, "GET only"), http.StatusMethodNotAllowed},
		{Errorf(ETOOLARGE, "too big"), http.StatusRequestEntityTooLarge},
		{Errorf(EUNAVAILABLE, "later"), http.StatusServiceUnavailable},
		{fmt.Errorf("promote: %w", Errorf(ECONFLICT, "locked")), http.StatusConflict},
		{errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		if got := HTTPStatus(tc.err); got != tc.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestErrorCause: a wrapped cause is in the error's text and its chain,
// for the logs, and never in the message users see.
func TestErrorCause(t *testing.T) {
	cause := errors.New("exit status 128: fatal: /var/lib/ferry/cache/app.git: permission denied")
	wrapped := Wrap(cause, EUNAVAILABLE, "cannot fetch the repository %s", "https://git.example/app")
	for _, tc := range []struct {
		err     error
		code    string
		message string
		text    string
		hidden  bool
	}{
		{nil, "", "", "", false},
		{Errorf(ECONFLICT, "locked"), ECONFLICT, "locked", "conflict: locked", false},
		{wrapped, EUNAVAILABLE, "cannot fetch the repository https://git.example/app",
			"unavailable: cannot fetch the repository https://git.example/app: " + cause.Error(), true},
		{fmt.Errorf("promote: %w", Errorf(ECONFLICT, "locked")), ECONFLICT, "locked", "promote: conflict: locked", true},
		{cause, EINTERNAL, "internal error", cause.Error(), true},
	} {
		if got := ErrorCode(tc.err); got != tc.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", tc.err, got, tc.code)
		}
		if got := ErrorMessage(tc.err); got != tc.message {
			t.Errorf("ErrorMessage(%v) = %q, want %q", tc.err, got, tc.message)
		}
		if got := ErrorHidden(tc.err); got != tc.hidden {
			t.Errorf("ErrorHidden(%v) = %v, want %v", tc.err, got, tc.hidden)
		}
		if tc.err != nil && tc.err.Error() != tc.text {
			t.Errorf("Error() = %q, want %q", tc.err.Error(), tc.text)
		}
	}
	if !errors.Is(wrapped, cause) {
		t.Error("errors.Is(Wrap(cause, …), cause) = false, want true")
	}
}
