package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
)

// routes maps every path. A path's catch-all pattern without a method
// answers the methods it does not serve with a JSON 405.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{username}", s.getHello)
	mux.HandleFunc("PUT /hello/{username}", s.putHello)
	mux.HandleFunc("/hello/{username}", methodNotAllowed("GET, HEAD, PUT"))
	mux.HandleFunc("/hello/{$}", s.emptyUsername)

	mux.HandleFunc("GET /statusz", s.statusz)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /version", s.version)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}}))
	for _, path := range []string{"/statusz", "/healthz", "/version", "/metrics"} {
		mux.HandleFunc(path, methodNotAllowed("GET, HEAD"))
	}
	mux.HandleFunc("/", notFound)
	return mux
}

// getHello answers GET /hello/{username} with the greeting.
func (s *Server) getHello(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	msg, err := s.cfg.Service.Greet(ctx, r.PathValue("username"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, messageBody{msg})
}

// putHello answers PUT /hello/{username} with {"dateOfBirth":"YYYY-MM-DD"}:
// 204 once saved.
func (s *Server) putHello(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("username")
	if err := birthday.ValidateName(name); err != nil {
		s.error(w, r, err)
		return
	}
	dob, err := decodeDateOfBirth(r.Body)
	if err != nil {
		s.error(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	if err := s.cfg.Service.Save(ctx, name, dob); err != nil {
		s.error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) emptyUsername(w http.ResponseWriter, r *http.Request) {
	s.error(w, r, birthday.ValidateName(""))
}

// decodeDateOfBirth reads a body that is exactly one JSON object with one
// string field, "dateOfBirth" (matched case-sensitively), and nothing
// after it. Errors are EINVALID and name the problem, except a body over
// the limit, which stays an *http.MaxBytesError.
//
// The body nearly every client sends, {"dateOfBirth":"YYYY-MM-DD"} with no
// space, is recognised without the JSON decoder (a seventh of a PUT's
// CPU); any other body goes to the decoder, from its first byte, so the
// answer is the decoder's (TestDecodeDateOfBirthFastPath compares them).
func decodeDateOfBirth(body io.Reader) (string, error) {
	var buf [len(compactPrefix) + len("YYYY-MM-DD") + len(compactSuffix) + 1]byte
	n, err := io.ReadFull(body, buf[:])
	if errors.Is(err, io.ErrUnexpectedEOF) {
		if dob, ok := compactDateOfBirth(buf[:n]); ok {
			return dob, nil
		}
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		// A read error (the limit, a client gone): the decoder meets it
		// where it would have.
		return decodeDateOfBirthJSON(io.MultiReader(bytes.NewReader(buf[:n]), errReader{err}))
	}
	return decodeDateOfBirthJSON(io.MultiReader(bytes.NewReader(buf[:n]), body))
}

const (
	compactPrefix = `{"dateOfBirth":"`
	compactSuffix = `"}`
)

// compactDateOfBirth returns the value of b when b is exactly
// {"dateOfBirth":"…"} with ten characters of digits and dashes as the
// value: a body the JSON decoder would read as that string.
func compactDateOfBirth(b []byte) (string, bool) {
	const size = len(compactPrefix) + len("YYYY-MM-DD") + len(compactSuffix)
	if len(b) != size || string(b[:len(compactPrefix)]) != compactPrefix || string(b[size-len(compactSuffix):]) != compactSuffix {
		return "", false
	}
	v := b[len(compactPrefix) : size-len(compactSuffix)]
	for _, c := range v {
		if (c < '0' || c > '9') && c != '-' {
			return "", false
		}
	}
	return string(v), true
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decodeDateOfBirthJSON is decodeDateOfBirth with the JSON decoder, for
// every body.
func decodeDateOfBirthJSON(body io.Reader) (string, error) {
	const want = `want {"dateOfBirth":"YYYY-MM-DD"}`
	dec := json.NewDecoder(body)
	// token reads the next token; at the end of the body it fails with
	// atEOF, or succeeds with nil when atEOF is "".
	token := func(atEOF string) (json.Token, error) {
		tok, err := dec.Token()
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, err
		}
		if errors.Is(err, io.EOF) {
			if atEOF == "" {
				return nil, nil
			}
			return nil, birthday.Errorf(birthday.EINVALID, "%s; %s", atEOF, want)
		}
		if err != nil {
			return nil, birthday.Errorf(birthday.EINVALID, "request body is not valid JSON (%v); %s", err, want)
		}
		return tok, nil
	}
	const early = "request body ends too early"

	tok, err := token("request body is empty")
	if err != nil {
		return "", err
	}
	if tok != json.Delim('{') {
		return "", birthday.Errorf(birthday.EINVALID, "request body must be a JSON object; %s", want)
	}
	var dob *string
	for dec.More() {
		if tok, err = token(early); err != nil {
			return "", err
		}
		if key := tok.(string); key != "dateOfBirth" { // object keys are strings
			return "", birthday.Errorf(birthday.EINVALID, "unknown field %q; %s", key, want)
		}
		if dob != nil {
			return "", birthday.Errorf(birthday.EINVALID, `field "dateOfBirth" appears twice`)
		}
		if tok, err = token(early); err != nil {
			return "", err
		}
		v, ok := tok.(string)
		if !ok {
			return "", birthday.Errorf(birthday.EINVALID, `field "dateOfBirth" must be a string in YYYY-MM-DD format`)
		}
		dob = &v
	}
	if _, err := token(early); err != nil { // the closing brace
		return "", err
	}
	if dob == nil {
		return "", birthday.Errorf(birthday.EINVALID, `missing field "dateOfBirth"; %s`, want)
	}
	tok, err = token("")
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return "", err
	}
	if err != nil || tok != nil {
		return "", birthday.Errorf(birthday.EINVALID, "unexpected data after the JSON object; %s", want)
	}
	return *dob, nil
}

// statusz is the readiness probe: 503 once shutdown began or while the
// database does not answer.
func (s *Server) statusz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.PingTimeout)
	defer cancel()
	if err := s.cfg.Pinger.Ping(ctx); err != nil {
		s.logger(r).Warn("readiness: database ping failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "the database does not answer"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// healthz is the liveness probe: the process serves HTTP.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Build)
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)})
	}
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, errorBody{fmt.Sprintf("no such path: %s", r.URL.Path)})
}

type errorBody struct {
	Error string `json:"error"`
}

type messageBody struct {
	Message string `json:"message"`
}

// status is the HTTP status for an error code: the one place they map.
func status(code string) int {
	switch code {
	case birthday.EINVALID:
		return http.StatusBadRequest
	case birthday.ENOTFOUND:
		return http.StatusNotFound
	case birthday.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// error answers with err's status and user-safe message; causes of server
// errors go to the log only.
func (s *Server) error(w http.ResponseWriter, r *http.Request, err error) {
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)})
		return
	}
	code := status(birthday.ErrorCode(err))
	if code >= 500 {
		s.logger(r).Error("request failed", "status", code, "err", err)
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
	}
	writeJSON(w, code, errorBody{birthday.ErrorMessage(err)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only for values that cannot be encoded: a bug
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
