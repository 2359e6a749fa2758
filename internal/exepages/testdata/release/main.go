// Command release calls exepages.Release, then works all over its binary
// again (stack traces, GCs, reflection over types, a map, fmt): run by
// TestReleaseBuildModes in each build mode.
package main

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"sort"

	"github.com/ferryhq/ferry/internal/exepages"
)

func main() {
	st, err := exepages.Release()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buf := make([]byte, 1<<16)
	for range 5 {
		runtime.Stack(buf, true)
		runtime.GC()
	}
	m := map[string]int{"b": 2, "a": 1}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("released; still runs: RssFile %d → %d kB, %v %s\n", st.Before>>10, st.After>>10, keys, reflect.TypeOf(st))
}
