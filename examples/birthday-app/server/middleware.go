package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

type ctxKey struct{}

// RequestID is the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// requestID gives every request an id: the client's X-Request-Id when it
// is 1–128 characters of [A-Za-z0-9._:+=/-], a new one otherwise. The id
// is echoed in the response's X-Request-Id header and logged.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID(id) {
			id = s.cfg.NewRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:+=/-", c) >= 0) {
			return false
		}
	}
	return true
}

// logger is the server's logger with the request's id.
func (s *Server) logger(r *http.Request) *slog.Logger {
	return s.log.With("request_id", RequestID(r.Context()))
}

// observe limits the request body, recovers from panics (500), and
// records one access log line and the metrics of every request. It must
// wrap the mux directly: it reads the route pattern the mux stores in
// the request.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		r.Body = http.MaxBytesReader(rec, r.Body, MaxBodyBytes)
		s.metrics.inFlight.Inc()
		defer func() {
			s.metrics.inFlight.Dec()
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger(r).Error("panic serving request", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rec.wrote {
					writeJSON(rec, http.StatusInternalServerError, errorBody{"internal error"})
				}
			}
			if rec.code == 0 {
				rec.code = http.StatusOK
			}
			end := time.Now()
			elapsed := end.Sub(start)
			route := routeOf(r.Pattern)
			s.metrics.observe(methodLabel(r.Method), route, rec.code, elapsed)
			s.accessLog(r, end, route, rec, elapsed)
		}()
		next.ServeHTTP(rec, r)
	})
}

// accessLog writes the request's line. It hands the record to the handler
// itself, as Logger.LogAttrs would, but without the caller's program
// counter (the handler does not print it) and with the end time already
// read, which saves a stack walk and a clock read per request.
func (s *Server) accessLog(r *http.Request, end time.Time, route string, rec *recorder, elapsed time.Duration) {
	ctx := r.Context()
	h := s.log.Handler()
	level := accessLevel(route, rec.code)
	if !h.Enabled(ctx, level) {
		return
	}
	line := slog.NewRecord(end, level, "request", 0)
	line.AddAttrs(
		slog.String("request_id", RequestID(ctx)),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", route),
		slog.Int("status", rec.code),
		slog.Int64("bytes", rec.bytes),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("remote", r.RemoteAddr),
		slog.String("user_agent", r.UserAgent()),
	)
	// As Logger.LogAttrs does, a line that cannot be written is dropped:
	// it is not the request's failure.
	_ = h.Handle(ctx, line)
}

// accessLevel is the level of a request's access line: debug for a probe
// that passed (a load balancer or kubelet checks /statusz several times a
// second per replica, which would drown the log), info for everything
// else, failed probes included.
func accessLevel(route string, code int) slog.Level {
	if (route == "/statusz" || route == "/healthz") && code < 300 {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// routeOf turns a mux pattern ("GET /hello/{username}") into the route
// label ("/hello/{username}"); requests no pattern matched are "unmatched".
func routeOf(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

// methodLabel keeps the method label's values few.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete,
		http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

func statusLabel(code int) string {
	if code >= 100 && code <= 599 {
		return strconv.Itoa(code)
	}
	return "other"
}

// recorder remembers the status and size of a response.
type recorder struct {
	http.ResponseWriter
	code  int
	bytes int64
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.code, r.wrote = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// slogPrinter adapts a *slog.Logger to promhttp's error logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics: " + fmt.Sprint(v...)) }
