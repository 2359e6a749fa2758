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
		{Errorf(EUNAVAILABLE, "later"), http.StatusServiceUnavailable},
		{fmt.Errorf("promote: %w", Errorf(ECONFLICT, "locked")), http.StatusConflict},
		{errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		if got := HTTPStatus(tc.err); got != tc.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
