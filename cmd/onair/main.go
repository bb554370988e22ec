// Command onair is the interactive live broadcasting server.
//
//	onair serve [flags]     run the server (SRT in, LL-HLS out)
//	onair version
package main

import (
	"fmt"
	"os"
)

var version = "dev"

const usage = `onair — interactive live broadcasting server

Usage:
  onair serve [flags]   run the server (see 'onair serve -h' for every setting)
  onair version         print the version

More subcommands (publish, replay, sim) arrive with later releases.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serveMain(os.Args[2:]))
	case "version", "-version", "--version":
		fmt.Println("onair", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "onair: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
