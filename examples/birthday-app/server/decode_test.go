package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

// decodeBoth decodes body with decodeDateOfBirth and with the JSON decoder
// alone, each through the same body limit as the server's, and says how
// their answers differ ("" when they agree).
func decodeBoth(body string, oneByte bool) (got string, diff string) {
	read := func() io.Reader {
		var r io.Reader = http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(body)), MaxBodyBytes)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		return r
	}
	dob, err := decodeDateOfBirth(read())
	want, wantErr := decodeDateOfBirthJSON(read())
	show := func(v string, err error) string {
		var mbe *http.MaxBytesError
		return fmt.Sprintf("%q, %v (limit error %t)", v, err, errors.As(err, &mbe))
	}
	if g, w := show(dob, err), show(want, wantErr); g != w {
		return dob, fmt.Sprintf("decodeDateOfBirth(%q) = %s, the JSON decoder says %s", body, g, w)
	}
	return dob, ""
}

func TestDecodeDateOfBirthFastPath(t *testing.T) {
	for _, tt := range []struct {
		body, want string
	}{
		{`{"dateOfBirth":"1990-05-17"}`, "1990-05-17"}, // the fast path
		{`{"dateOfBirth":"2001-02-30"}`, "2001-02-30"}, // decoded; the date is the service's to refuse
		{`{"dateOfBirth":"1990-5-17x"}`, "1990-5-17x"}, // not digits and dashes: decoded by the decoder
		{`{"dateOfBirth":"1990-05-17"}` + "\n", "1990-05-17"},
		{`{"dateOfBirth":"1990-05-17"} `, "1990-05-17"},
		{`{ "dateOfBirth":"1990-05-17"}`, "1990-05-17"},
		{`{"dateOfBirth":"1990-05-1"}`, "1990-05-1"},
		{`{"dateOfBirth":"1990-05-177"}`, "1990-05-177"},
		{`{"dateOfBirth":"1990\u002d05-17"}`, "1990-05-17"},
		{`{"dateOfBirth":"1990-05-17"}{}`, ""},
		{`{"dateOfBirth":"1990-05-17"}x`, ""},
		{`{"dateofbirth":"1990-05-17"}`, ""},
		{`{"dateOfBirth":"1990-05-17","x":1}`, ""},
		{`{"dateOfBirth":"1990-05-17","dateOfBirth":"1990-05-17"}`, ""},
		{`{"dateOfBirth":19900517}`, ""},
		{`{"dateOfBirth":"1990-05-17"`, ""},
		{`{"dateOfBirth":"1990-05-17"]`, ""},
		{`["dateOfBirth","1990-05-17"]`, ""},
		{``, ""},
		{`{}`, ""},
		{`{"dateOfBirth":"` + strings.Repeat("1", 2000) + `"}`, ""},
		{strings.Repeat(" ", 2000) + `{"dateOfBirth":"1990-05-17"}`, ""},
	} {
		for _, oneByte := range []bool{false, true} {
			got, diff := decodeBoth(tt.body, oneByte)
			if diff != "" {
				t.Error(diff)
			}
			if got != tt.want {
				t.Errorf("decodeDateOfBirth(%q) = %q, want %q", tt.body, got, tt.want)
			}
		}
	}
}

func FuzzDecodeDateOfBirth(f *testing.F) {
	for _, s := range []string{`{"dateOfBirth":"1990-05-17"}`, `{"dateOfBirth":"1990-05-1"}`, `{"dateOfBirth":"19\"0-05-17"}`, ``, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if _, diff := decodeBoth(body, false); diff != "" {
			t.Error(diff)
		}
	})
}
