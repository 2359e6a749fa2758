// Command birthday-app serves the hello-birthday API: PUT /hello/{username}
// saves a date of birth, GET /hello/{username} greets the user with the
// days left to their birthday. It stores users in SQLite, PostgreSQL or
// MySQL/MariaDB, chosen by the -db URL, and shuts down gracefully on
// SIGTERM. Run it with -help for its flags and environment variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // -timezone works where the system has no zoneinfo

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo"
	"github.com/ferryhq/ferry/examples/birthday-app/server"
	"github.com/ferryhq/ferry/examples/birthday-app/store/mysql"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is a bad flag or environment value: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitCode reports err on stderr and returns the process's exit status:
// 0 for success and -help, 2 for usage errors, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "birthday-app: %v\nRun 'birthday-app -help' for usage.\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "birthday-app: %v\n", err)
		return 1
	}
}

// run parses the configuration from args and getenv, opens the store,
// and serves until ctx ends. Logs go to stdout as JSON.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	info := buildinfo.Read()
	if cfg.version {
		fmt.Fprintf(stdout, "birthday-app commit %s built %s with %s\n", info.Commit, info.BuildTime, info.GoVersion)
		return nil
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.logLevel}))
	mysql.LogTo(log)
	log.Info("starting birthday-app",
		"commit", info.Commit, "build_time", info.BuildTime, "go_version", info.GoVersion,
		"listen", cfg.listen, "db", redact(cfg.db), "timezone", cfg.timezone.String(),
		"db_timeout", cfg.dbTimeout.String(), "shutdown_delay", cfg.shutdownDelay.String(),
		"shutdown_timeout", cfg.shutdownTimeout.String(), "log_level", cfg.logLevel.String())

	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := openStore(openCtx, cfg.db)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before serving")
			return nil
		}
		log.Error("cannot open the database", "err", err)
		return err
	}
	defer st.Close()

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		log.Error("cannot listen", "err", err)
		return err
	}
	log.Info("listening", "addr", ln.Addr().String())

	srv := server.New(server.Config{
		Service:         birthday.NewService(st, time.Now, cfg.timezone),
		Pinger:          st,
		Logger:          log,
		Build:           info,
		StoreTimeout:    cfg.dbTimeout,
		ShutdownDelay:   cfg.shutdownDelay,
		ShutdownTimeout: cfg.shutdownTimeout,
	})
	if err := srv.Serve(ctx, ln); err != nil {
		log.Error("server stopped", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}
