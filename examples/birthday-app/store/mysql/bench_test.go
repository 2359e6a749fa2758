package mysql

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/cputime"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/testdb"
	"github.com/ferryhq/ferry/examples/birthday-app/store/internal/coalesce"
)

// BenchmarkUser looks up users of 10,000 from 4×GOMAXPROCS goroutines at
// once: one query each ("direct", the store before coalescing) and
// through Store.User ("coalesced"). Beside the wall time per lookup it
// reports the CPU time per lookup of this process and of the database
// server (when it runs on this machine; /proc counts in 10 ms ticks):
//
//	go test -run '^$' -bench User -cpu 2 ./store/mysql/
func BenchmarkUser(b *testing.B) {
	s, err := Open(b.Context(), testdb.MySQL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const users = 10000
	name := func(i int) string { return fmt.Sprintf("user%c%c%c", 'a'+i%26, 'a'+i/26%26, 'a'+i/676%26) }
	for i := range users {
		u := birthday.User{Name: name(i), DateOfBirth: birthday.Date{Year: 1950 + i%50, Month: time.Month(1 + i%12), Day: 1 + i%28}}
		if err := s.PutUser(b.Context(), u); err != nil {
			b.Fatal(err)
		}
	}
	var pidFile string
	if err := s.db.QueryRowContext(b.Context(), `SELECT @@pid_file`).Scan(&pidFile); err != nil {
		b.Fatal(err)
	}
	server := serverPID(pidFile)
	for _, tt := range []struct {
		name    string
		batches int
	}{
		{"direct", 0},
		{"coalesced", lookupBatches},
	} {
		b.Run(tt.name, func(b *testing.B) {
			// Without coalescing, each lookup is a query of its own:
			// as many slots as there are lookups in flight.
			s.dates = coalesce.New(s.datesOfBirth, coalesce.Options{Batches: cmp.Or(tt.batches, 1<<20), MaxBatch: lookupBatchSize})
			b.SetParallelism(4) // as many goroutines as cmd/bench's 8 HTTP clients on 2 CPUs
			cpu0, srv0 := cputime.Self(), cputime.Of(server)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.User(b.Context(), name(rand.IntN(users))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((cputime.Self()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64((cputime.Of(server)-srv0).Nanoseconds())/float64(b.N), "db-cpu-ns/op")
		})
	}
}

// serverPID reads the database server's pid file (0 when it is not on
// this machine).
func serverPID(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
