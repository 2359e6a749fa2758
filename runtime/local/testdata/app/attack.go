package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// attacks adds the handlers that try what a replica must not be able to.
func attacks(mux *http.ServeMux) {
	refused := func(w http.ResponseWriter, err error) {
		http.Error(w, err.Error(), http.StatusForbidden)
	}
	pid := func(r *http.Request) int {
		p, _ := strconv.Atoi(r.URL.Query().Get("pid"))
		return p
	}
	mux.HandleFunc("/ptrace", func(w http.ResponseWriter, r *http.Request) {
		// ptrace requests must all come from one thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		p := pid(r)
		if err := syscall.PtraceAttach(p); err != nil {
			refused(w, err)
			return
		}
		var ws syscall.WaitStatus
		syscall.Wait4(p, &ws, 0, nil)
		syscall.PtraceDetach(p)
		fmt.Fprintln(w, "attached")
	})
	mux.HandleFunc("/kill", func(w http.ResponseWriter, r *http.Request) {
		sig, _ := strconv.Atoi(r.URL.Query().Get("sig"))
		if err := syscall.Kill(pid(r), syscall.Signal(sig)); err != nil {
			refused(w, err)
			return
		}
		fmt.Fprintln(w, "signalled")
	})
	mux.HandleFunc("/mem", func(w http.ResponseWriter, r *http.Request) {
		p := pid(r)
		// Somewhere mapped: the start of its stack, from its maps.
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p))
		if err != nil {
			refused(w, err)
			return
		}
		var start uint64
		for _, line := range strings.Split(string(maps), "\n") {
			if strings.Contains(line, "[stack]") {
				a, _, _ := strings.Cut(line, "-")
				start, _ = strconv.ParseUint(a, 16, 64)
			}
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/mem", p))
		if err != nil {
			refused(w, err)
			return
		}
		defer f.Close()
		buf := make([]byte, 64)
		if _, err := f.ReadAt(buf, int64(start)); err != nil {
			refused(w, err)
			return
		}
		fmt.Fprintf(w, "read %x\n", buf)
	})
	mux.HandleFunc("/alloc", func(w http.ResponseWriter, r *http.Request) {
		var held [][]byte
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				if j%4096 == 0 {
					b[j] = 1
				}
			}
			held = append(held, b)
			if i%64 == 0 {
				fmt.Printf("allocated %d MiB\n", len(held))
			}
		}
	})
	mux.HandleFunc("/forkbomb", func(w http.ResponseWriter, r *http.Request) {
		exe, err := os.Executable()
		if err != nil {
			refused(w, err)
			return
		}
		var started []*exec.Cmd
		defer func() {
			for _, c := range started {
				c.Process.Kill()
				c.Wait()
			}
		}()
		for len(started) < 100000 {
			c := exec.Command(exe)
			c.Env = append(os.Environ(), "FORKBOMB_CHILD=1", "GOMAXPROCS=1")
			if err := c.Start(); err != nil {
				fmt.Fprintf(w, "started %d, then: %v\n", len(started), err)
				return
			}
			started = append(started, c)
		}
		fmt.Fprintf(w, "started %d, no limit met\n", len(started))
	})
}
