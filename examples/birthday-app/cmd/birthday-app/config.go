package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
)

// config is birthday-app's whole configuration.
type config struct {
	listen          string
	db              string
	timezone        *time.Location
	logLevel        slog.Level
	dbTimeout       time.Duration
	shutdownDelay   time.Duration
	shutdownTimeout time.Duration
	version         bool
}

// option is one flag with the environment variables it falls back to, in
// order, and its default.
type option struct {
	name, arg, usage string
	envs             []env
	def              string
	set              func(c *config, v string) error
}

type env struct {
	name string
	// value turns the variable into the flag's value; nil keeps it as is.
	value func(string) string
}

var options = []option{
	{
		name: "listen", arg: "ADDR",
		usage: "address to serve HTTP on, host:port (port 0 picks a free port; the log says which)",
		envs: []env{{"BIRTHDAY_LISTEN", nil}, {"LISTEN", nil},
			{"PORT", func(p string) string { return net.JoinHostPort("127.0.0.1", p) }}},
		def: "127.0.0.1:8080",
		set: func(c *config, v string) error {
			if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
				return fmt.Errorf("want host:port, such as 127.0.0.1:8080 or :8080")
			}
			c.listen = v
			return nil
		},
	},
	{
		name: "db", arg: "URL",
		usage: "database: sqlite:///abs/path.db, sqlite://relative/path.db, postgres://user:pass@host:5432/db?sslmode=disable, mysql://user:pass@host:3306/db",
		envs:  []env{{"BIRTHDAY_DB", nil}, {"DATABASE_URL", nil}},
		def:   "sqlite://birthday.db",
		set: func(c *config, v string) error {
			if _, err := storeKind(v); err != nil {
				return err
			}
			c.db = v
			return nil
		},
	},
	{
		name: "timezone", arg: "ZONE",
		usage: `IANA time zone that decides what "today" is, such as Europe/Berlin`,
		envs:  []env{{"BIRTHDAY_TIMEZONE", nil}},
		def:   "UTC",
		set: func(c *config, v string) error {
			loc, err := time.LoadLocation(v)
			if err != nil || v == "" || v == "Local" {
				return fmt.Errorf("unknown time zone; want an IANA name such as UTC or Europe/Berlin")
			}
			c.timezone = loc
			return nil
		},
	},
	{
		name: "log-level", arg: "LEVEL",
		usage: "least severe level logged: debug, info, warn or error",
		envs:  []env{{"BIRTHDAY_LOG_LEVEL", nil}},
		def:   "info",
		set: func(c *config, v string) error {
			switch strings.ToLower(v) {
			case "debug":
				c.logLevel = slog.LevelDebug
			case "info":
				c.logLevel = slog.LevelInfo
			case "warn", "warning":
				c.logLevel = slog.LevelWarn
			case "error":
				c.logLevel = slog.LevelError
			default:
				return fmt.Errorf("want debug, info, warn or error")
			}
			return nil
		},
	},
	{
		name: "db-timeout", arg: "DURATION",
		usage: "longest a request waits for the database before answering 503",
		envs:  []env{{"BIRTHDAY_DB_TIMEOUT", nil}},
		def:   "5s",
		set:   duration(func(c *config) *time.Duration { return &c.dbTimeout }, false),
	},
	{
		name: "shutdown-delay", arg: "DURATION",
		usage: "on SIGTERM, how long to keep serving while /statusz reports 503, so load balancers stop sending traffic",
		envs:  []env{{"BIRTHDAY_SHUTDOWN_DELAY", nil}},
		def:   "0s",
		set:   duration(func(c *config) *time.Duration { return &c.shutdownDelay }, true),
	},
	{
		name: "shutdown-timeout", arg: "DURATION",
		usage: "on SIGTERM, after the delay, how long requests in flight get to finish",
		envs:  []env{{"BIRTHDAY_SHUTDOWN_TIMEOUT", nil}},
		def:   "20s",
		set:   duration(func(c *config) *time.Duration { return &c.shutdownTimeout }, false),
	},
}

func duration(field func(*config) *time.Duration, zeroOK bool) func(*config, string) error {
	return func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return fmt.Errorf("want a duration such as 500ms, 5s or 1m")
		case d < 0 || d == 0 && !zeroOK:
			return fmt.Errorf("want a positive duration")
		}
		*field(c) = d
		return nil
	}
}

// parseConfig applies, for every option, its default, then the first of
// its environment variables that is set, then the flag. -help prints the
// usage to stdout and returns flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("birthday-app", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, o := range options {
		value, from := o.def, "default"
		for _, e := range o.envs {
			if v := getenv(e.name); v != "" {
				value, from = v, e.name
				if e.value != nil {
					value = e.value(v)
				}
				break
			}
		}
		if err := o.set(&c, value); err != nil {
			return c, usageError{fmt.Errorf("%s=%q (for -%s): %w", from, value, o.name, err)}
		}
		fs.Func(o.name, o.usage, func(v string) error { return o.set(&c, v) })
	}
	fs.BoolVar(&c.version, "version", false, "print the build's commit and time, and exit")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			usage(stdout)
			return c, err
		}
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Errorf("unexpected argument %q: birthday-app takes only flags", fs.Arg(0))}
	}
	return c, nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: birthday-app [flags]

birthday-app serves the hello-birthday API:
  PUT /hello/{username}  {"dateOfBirth":"YYYY-MM-DD"}  saves a date of birth (204)
  GET /hello/{username}  greets the user with the days to their birthday (200)
and /statusz (readiness), /healthz (liveness), /version, /metrics (Prometheus).
Logs are JSON lines on stdout. SIGTERM or SIGINT shuts down gracefully.

Flags; each falls back to the environment variables listed, in order, then
to its default:
`)
	for _, o := range options {
		fmt.Fprintf(w, "\n  -%s %s\n    \t%s\n", o.name, o.arg, o.usage)
		var envs []string
		for _, e := range o.envs {
			name := e.name
			if e.name == "PORT" {
				name = "PORT (as 127.0.0.1:$PORT)"
			}
			envs = append(envs, name)
		}
		fmt.Fprintf(w, "    \tenv: %s; default: %s\n", strings.Join(envs, ", "), o.def)
	}
	fmt.Fprint(w, "\n  -version\n    \tprint the build's commit and time, and exit\n")
}
