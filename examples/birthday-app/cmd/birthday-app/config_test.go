package main

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func getenv(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want func(c config) bool
	}{
		{"defaults", nil, nil, func(c config) bool {
			return c.listen == "127.0.0.1:8080" && c.db == "sqlite://birthday.db" && c.timezone.String() == "UTC" &&
				c.logLevel == slog.LevelInfo && c.dbTimeout == 5*time.Second && c.shutdownDelay == 0 && c.shutdownTimeout == 20*time.Second
		}},
		{"PORT", nil, []string{"PORT", "9000"}, func(c config) bool { return c.listen == "127.0.0.1:9000" }},
		{"LISTEN beats PORT", nil, []string{"PORT", "9000", "LISTEN", ":7000"}, func(c config) bool { return c.listen == ":7000" }},
		{"BIRTHDAY_LISTEN beats LISTEN", nil, []string{"LISTEN", ":7000", "BIRTHDAY_LISTEN", "0.0.0.0:6000"}, func(c config) bool { return c.listen == "0.0.0.0:6000" }},
		{"flag beats env", []string{"-listen", "127.0.0.1:0"}, []string{"BIRTHDAY_LISTEN", ":6000"}, func(c config) bool { return c.listen == "127.0.0.1:0" }},
		{"DATABASE_URL", nil, []string{"DATABASE_URL", "postgres://u:p@h/db"}, func(c config) bool { return c.db == "postgres://u:p@h/db" }},
		{"BIRTHDAY_DB beats DATABASE_URL", nil, []string{"DATABASE_URL", "postgres://h/db", "BIRTHDAY_DB", "mysql://u@h/db"}, func(c config) bool { return c.db == "mysql://u@h/db" }},
		{"all flags", []string{"-db", "sqlite:///var/lib/b.db", "-timezone", "Asia/Tokyo", "-log-level", "DEBUG", "-db-timeout", "2s", "-shutdown-delay", "3s", "-shutdown-timeout", "1m"}, nil,
			func(c config) bool {
				return c.db == "sqlite:///var/lib/b.db" && c.timezone.String() == "Asia/Tokyo" && c.logLevel == slog.LevelDebug &&
					c.dbTimeout == 2*time.Second && c.shutdownDelay == 3*time.Second && c.shutdownTimeout == time.Minute
			}},
		{"env durations", nil, []string{"BIRTHDAY_SHUTDOWN_DELAY", "5s", "BIRTHDAY_LOG_LEVEL", "warn"}, func(c config) bool {
			return c.shutdownDelay == 5*time.Second && c.logLevel == slog.LevelWarn
		}},
	}
	for _, tt := range tests {
		c, err := parseConfig(tt.args, getenv(tt.env...), &bytes.Buffer{})
		if err != nil || !tt.want(c) {
			t.Errorf("%s: parseConfig(%q, %q) = %+v, %v", tt.name, tt.args, tt.env, c, err)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"-listen", "8080"}, nil, "want host:port"},
		{[]string{"-listen", "localhost"}, nil, "want host:port"},
		{nil, []string{"PORT", ""}, ""}, // empty means unset
		{nil, []string{"BIRTHDAY_LISTEN", "nope"}, `BIRTHDAY_LISTEN="nope"`},
		{[]string{"-db", "ftp://x"}, nil, `unsupported database "ftp"`},
		{[]string{"-db", "birthday.db"}, nil, "want a URL"},
		{[]string{"-db", "sqlite://"}, nil, "needs a file path"},
		{nil, []string{"DATABASE_URL", "redis://h"}, `DATABASE_URL="redis://h"`},
		{[]string{"-timezone", "Mars/Olympus"}, nil, "unknown time zone"},
		{[]string{"-timezone", "Local"}, nil, "unknown time zone"},
		{[]string{"-log-level", "loud"}, nil, "want debug, info, warn or error"},
		{[]string{"-db-timeout", "0s"}, nil, "want a positive duration"},
		{[]string{"-shutdown-timeout", "-1s"}, nil, "want a positive duration"},
		{[]string{"-shutdown-delay", "-1s"}, nil, "want a positive duration"},
		{[]string{"-shutdown-delay", "abc"}, nil, "want a duration"},
		{nil, []string{"BIRTHDAY_SHUTDOWN_TIMEOUT", "forever"}, "BIRTHDAY_SHUTDOWN_TIMEOUT"},
		{[]string{"-no-such-flag"}, nil, "flag provided but not defined"},
		{[]string{"serve"}, nil, `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		_, err := parseConfig(tt.args, getenv(tt.env...), &bytes.Buffer{})
		if tt.want == "" {
			if err != nil {
				t.Errorf("parseConfig(%q, %q) = %v, want nil", tt.args, tt.env, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseConfig(%q, %q) = %v, want an error containing %q", tt.args, tt.env, err, tt.want)
			continue
		}
		var stderr bytes.Buffer
		if code := exitCode(err, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("exitCode(%v) = %d, printing %q; want 2 and the message", err, code, stderr.String())
		}
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"-help"}, getenv(), &out)
	if !errors.Is(err, flag.ErrHelp) || exitCode(err, &bytes.Buffer{}) != 0 {
		t.Fatalf("parseConfig(-help) = %v, want flag.ErrHelp and exit status 0", err)
	}
	for _, want := range []string{"-listen", "-db", "-timezone", "-log-level", "-db-timeout", "-shutdown-delay",
		"-shutdown-timeout", "-version", "BIRTHDAY_LISTEN", "LISTEN", "PORT (as 127.0.0.1:$PORT)", "BIRTHDAY_DB", "DATABASE_URL",
		"BIRTHDAY_TIMEZONE", "BIRTHDAY_LOG_LEVEL", "BIRTHDAY_DB_TIMEOUT", "BIRTHDAY_SHUTDOWN_DELAY", "BIRTHDAY_SHUTDOWN_TIMEOUT",
		"default: 127.0.0.1:8080", "sqlite://", "postgres://", "mysql://"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-help output lacks %q", want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:s3cret@db:5432/b?sslmode=disable": "postgres://app:xxxxx@db:5432/b?sslmode=disable",
		"mysql://app:s3cret@db:3306/b":                    "mysql://app:xxxxx@db:3306/b",
		"sqlite:///var/lib/b.db":                          "sqlite:///var/lib/b.db",
		"postgres://%zz:s3cret@db/b":                      "(unparsable URL)",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
