package postgres

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/examples/birthday-app/birthday"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/cputime"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/testdb"
	"github.com/ferryhq/ferry/examples/birthday-app/store/internal/coalesce"
)

// BenchmarkUser looks up users of 10,000 from 4×GOMAXPROCS goroutines at
// once: one query each as the store did before coalescing ("direct"),
// through Store.User with 1 to 8 queries in flight ("coalesced-N"), and
// queries of k names each ("names-k", per query). Beside the wall time
// per lookup it reports the CPU time per lookup of this process and of
// the PostgreSQL backends serving it (when PostgreSQL runs on this
// machine; /proc counts in 10 ms ticks):
//
//	go test -run '^$' -bench User -cpu 2 ./store/postgres/
func BenchmarkUser(b *testing.B) {
	s, err := Open(b.Context(), testdb.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const users = 10000
	for i := range users {
		u := birthday.User{Name: benchName(i), DateOfBirth: birthday.Date{Year: 1950 + i%50, Month: time.Month(1 + i%12), Day: 1 + i%28}}
		if err := s.PutUser(b.Context(), u); err != nil {
			b.Fatal(err)
		}
	}
	random := func() string { return benchName(rand.IntN(users)) }

	b.Run("direct", func(b *testing.B) {
		measure(b, s, func() error {
			var dob time.Time
			return s.pool.QueryRow(b.Context(), `SELECT date_of_birth FROM users WHERE username = $1`, random()).Scan(&dob)
		})
	})
	for _, batches := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprint("coalesced-", batches), func(b *testing.B) {
			s.dates = coalesce.New(s.datesOfBirth, coalesce.Options{Batches: batches, MaxBatch: lookupBatchSize})
			measure(b, s, func() error {
				_, err := s.User(b.Context(), random())
				return err
			})
		})
	}
	for _, k := range []int{1, 2, 4, 8, 16} {
		b.Run(fmt.Sprint("names-", k), func(b *testing.B) {
			measure(b, s, func() error {
				names := make([]string, k)
				for i := range names {
					names[i] = random()
				}
				_, err := s.datesOfBirth(b.Context(), names)
				return err
			})
		})
	}
}

// measure runs op from 4×GOMAXPROCS goroutines and reports the CPU time
// per op of this process and of s's PostgreSQL backends.
func measure(b *testing.B, s *Store, op func() error) {
	b.SetParallelism(4) // as many goroutines as the bench's 8 HTTP clients on 2 CPUs
	cpu0, pg0 := cputime.Self(), s.backendsCPUTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cputime.Self()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64((s.backendsCPUTime(b)-pg0).Nanoseconds())/float64(b.N), "pg-cpu-ns/op")
}

func benchName(i int) string { return fmt.Sprintf("user%c%c%c", 'a'+i%26, 'a'+i/26%26, 'a'+i/676%26) }

// backendsCPUTime is the CPU time so far of the PostgreSQL backends
// connected to s's database, read from /proc (0 for those not on this
// machine).
func (s *Store) backendsCPUTime(b *testing.B) time.Duration {
	rows, err := s.pool.Query(b.Context(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, pid := range pids {
		total += cputime.Of(int(pid))
	}
	return total
}
