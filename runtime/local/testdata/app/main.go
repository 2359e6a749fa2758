// Command app is the replica the local runtime's tests run: a tiny HTTP
// server whose behaviour the image's environment chooses.
//
//	PORT or -addr   where it listens
//	VERSION         what /version answers (main.version by default)
//	CRASH=1         exit at start
//	READY=never     /statusz always answers 503
//	IGNORE_TERM=1   ignore SIGTERM
//	FAIL_EVERY=N    every Nth /version answers 500 (a canary that fails 1/N)
//	DELAY=D         /version answers after D (a Go duration: a slow canary)
//
// /whoami answers "uid gid cwd", /read?path=P the file's first bytes or the
// error, /write?name=N writes N into /data (into ?dir= when
// given), /print?n=N&text=T prints N lines to stdout.
//
// The attacks a contained replica must be refused, each answering 200 and
// what it got when it succeeds, 403 and the error when refused:
// /ptrace?pid=P attaches to P, /kill?pid=P&sig=N signals it, /mem?pid=P
// reads its memory at its stack (/proc/P/mem); /alloc allocates and
// touches memory without bound (it never answers unless it fails);
// /forkbomb starts copies of itself that sleep until one cannot start,
// and answers how many did and why the next did not.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

var version = "dev"

func main() {
	addr := flag.String("addr", "", "listen address (default 127.0.0.1:$PORT)")
	flag.Parse()
	if *addr == "" {
		*addr = "127.0.0.1:" + os.Getenv("PORT")
	}
	if os.Getenv("FORKBOMB_CHILD") == "1" {
		time.Sleep(time.Hour)
		return
	}
	if v := os.Getenv("VERSION"); v != "" {
		version = v
	}
	if os.Getenv("CRASH") == "1" {
		fmt.Println("crashing at start, as asked")
		os.Exit(3)
	}
	never := os.Getenv("READY") == "never"
	failEvery, _ := strconv.ParseInt(os.Getenv("FAIL_EVERY"), 10, 64)
	delay, _ := time.ParseDuration(os.Getenv("DELAY"))
	var versions atomic.Int64

	mux := http.NewServeMux()
	mux.HandleFunc("/statusz", func(w http.ResponseWriter, r *http.Request) {
		if never {
			http.Error(w, "never ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if n := versions.Add(1); failEvery > 0 && n%failEvery == 0 {
			http.Error(w, version+" failing, as asked", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, version)
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		fmt.Fprintf(w, "%d %d %s\n", os.Getuid(), os.Getgid(), cwd)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		defer f.Close()
		io.CopyN(w, f, 64)
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		dir := r.URL.Query().Get("dir")
		if dir == "" {
			dir = "/data"
		}
		p := filepath.Join(dir, filepath.Base(r.URL.Query().Get("name")))
		if err := os.WriteFile(p, []byte(version+"\n"), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, p)
	})
	mux.HandleFunc("/print", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		text := r.URL.Query().Get("text")
		for i := range n {
			fmt.Printf("%s %d\n", text, i)
		}
	})

	attacks(mux)

	srv := &http.Server{Addr: *addr, Handler: mux}
	if os.Getenv("IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		log.Fatal(srv.ListenAndServe())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		fmt.Println("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Printf("version %s listening on %s\n", version, *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
