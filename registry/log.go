package registry

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// distribution logs through logrus's process-wide standard logger, which its
// handlers reach through context keys of an internal package. The bridge
// below silences that logger's own output and forwards its warnings and
// errors to the slog loggers of the servers that are running.

var (
	quietOnce sync.Once
	sinksMu   sync.Mutex
	sinks     = map[*slog.Logger]int{} // running servers' loggers, counted
)

// quietLogrus discards logrus output and installs the forwarding hook, once
// per process.
func quietLogrus() {
	quietOnce.Do(func() {
		logrus.SetOutput(io.Discard)
		logrus.SetLevel(logrus.WarnLevel)
		logrus.AddHook(bridge{})
	})
}

func register(l *slog.Logger) {
	sinksMu.Lock()
	sinks[l]++
	sinksMu.Unlock()
}

func unregister(l *slog.Logger) {
	sinksMu.Lock()
	if sinks[l]--; sinks[l] <= 0 {
		delete(sinks, l)
	}
	sinksMu.Unlock()
}

// forwarded lists the logrus fields worth keeping; the rest (user agent,
// remote address, Go version, …) is noise in ferry's log.
var forwarded = []string{
	"error", "err.code", "err.message", "err.detail",
	"http.request.method", "http.request.uri", "http.response.status",
	"vars.name", "vars.reference", "vars.digest",
}

type bridge struct{}

func (bridge) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (bridge) Fire(e *logrus.Entry) error {
	level := slog.LevelWarn
	// Client errors (unknown manifest, bad digest, …) are logged by
	// distribution at error level; for ferry they are the client's business.
	if status, ok := e.Data["http.response.status"].(int); ok && status < 500 {
		level = slog.LevelDebug
	}
	// Every client first asks without credentials and is challenged: the
	// protocol, not an attempt. Wrong credentials ("authentication
	// failure") stay a warning.
	if strings.Contains(e.Message, "authentication challenge") && strings.Contains(e.Message, "invalid authorization credential") {
		level = slog.LevelDebug
	}
	attrs := make([]slog.Attr, 0, len(forwarded))
	for _, k := range forwarded {
		if v, ok := e.Data[k]; ok {
			attrs = append(attrs, slog.Any(k, v))
		}
	}
	sinksMu.Lock()
	defer sinksMu.Unlock()
	for l := range sinks {
		l.LogAttrs(context.Background(), level, e.Message, attrs...)
	}
	return nil
}
