// Command ferryd is ferry with its server parts: every command of ferry's
// client, and those that run the parts in this process (serve, node, demo,
// key). The client, cmd/ferry, hands those commands to it. main only wires.
package main

import (
	"github.com/ferryhq/ferry/cli"
	"github.com/ferryhq/ferry/server"
)

func main() { cli.Main("ferryd", server.Parts{}) }
