// Command hello is a tiny HTTP server standing in for birthday-app: it
// answers /version with the commit linked in by -X main.commit.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

var commit = "unknown"

func main() {
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	http.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, commit)
	})
	log.Printf("listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
