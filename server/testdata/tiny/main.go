// Command tiny is the smallest app ferry's server tests build: it serves
// /version with the commit set at link time.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

var commit = "unknown"

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	flag.Parse()
	http.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "{\"commit\":%q}\n", commit)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
