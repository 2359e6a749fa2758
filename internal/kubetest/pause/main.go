// Command pause is the sandbox process of every pod on the test cluster's
// real node (scripts/k8s-node builds it statically and imports it into the
// node's containerd as its sandbox image, so no image is pulled from the
// internet). It holds the pod's namespaces open: it waits until SIGTERM or
// SIGINT and exits 0, and, being PID 1 of its PID namespace, reaps the
// children it inherits.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap waits for every child that has exited, without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
