package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/ferryhq/ferry/internal/exepages"
)

// trimExePages keeps the pages of ferry's executable that a long-lived
// process (serve, node, demo) holds to what it uses (package exepages):
// released once the start is done, again one exeTrimEvery later, and
// whenever a burst of work left more than exeSlack resident, checked every
// exeTrimEvery; each release is logged.
func trimExePages(ctx context.Context, log *slog.Logger) {
	go exepages.Trim(ctx, exeTrimEvery, exeSlack, func(st exepages.Stats, err error) {
		if err != nil {
			log.Warn("release the executable's resident pages", "err", err)
			return
		}
		log.Info("released the executable's resident pages", "before", mib(st.Before), "after", mib(st.After))
	})
}

const (
	exeTrimEvery = 10 * time.Second
	exeSlack     = 8 << 20
)

// mib formats n bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }

// serveGCPercent is ferry serve's GOGC while the node carries the
// environments' requests: serve's heap is then bursts (builds, pushes,
// reads of a large ledger) whose garbage a lower GOGC keeps from doubling
// its idle memory, at a cost in GC cycles that no request forwarded to a
// replica pays.
const serveGCPercent = 50

// leanHeap sets serveGCPercent unless the user set GOGC.
func leanHeap(log *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(serveGCPercent)
	log.Debug("GOGC for ferry serve", "percent", serveGCPercent)
}
