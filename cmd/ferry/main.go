// Command ferry is the release controller's command line: a client of the
// server's API, the git hook, and the local commands that need no server
// part. The commands that run ferry's server parts (serve, node, demo, key)
// go to ferryd (cmd/ferryd), the binary that links them, which this one
// does not, so that each command here starts at once. main only wires.
package main

import "github.com/ferryhq/ferry/cli"

func main() { cli.Main("ferry", nil) }
