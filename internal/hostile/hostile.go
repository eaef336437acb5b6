// Package hostile is the hostile-client suite: it attacks a running fleet
// through its public port the way a careless or malicious client could
// (large escape-heavy writes queued behind stalled consumers, a flood of
// writes, concurrent bodies at the size limit, unknown members of
// megabytes, duplicate members, huge query strings and headers, slow
// headers and bodies) while a well-behaved client reads and writes at a
// fixed rate, and checks that no container was OOM-killed or restarted,
// that no acknowledged write was lost or dead-lettered, that every refused
// request got a JSON error, and that the well-behaved client was served.
//
// Traffic goes only to a loopback address; only the containers of one
// Compose project are paused and inspected.
package hostile

import (
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/kvfleet/kvfleet/internal/load"
)

// Options are the suite's settings.
type Options struct {
	API     string // the fleet's public address, a loopback URL
	Project string // the Compose project whose containers are checked
	Compose string // the Compose command, for the project's env file
	Quick   bool   // CI's shorter schedule
	Out     string // where the JSON report goes ("" for none)
	// Phase is how long the well-behaved client runs alone and beside each
	// attack.
	Phase time.Duration
	// GoodWrites and GoodReads are the well-behaved client's rates.
	GoodWrites, GoodReads int
	// BacklogWrites is how many 1 MiB escape-heavy writes are queued behind
	// the paused consumers.
	BacklogWrites int
	// FloodMax bounds the writes of the flood.
	FloodMax int
}

// ParseOptions reads the flags in args.
func ParseOptions(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("kvfleet-hostile", flag.ContinueOnError)
	fs.StringVar(&o.API, "api", "http://127.0.0.1:8000", "the fleet's public address (loopback only)")
	fs.StringVar(&o.Project, "project", "kvfleet", "the Compose project of the fleet")
	fs.BoolVar(&o.Quick, "quick", false, "CI's schedule: shorter phases and a smaller flood")
	fs.StringVar(&o.Out, "out", "hostile-report.json", "JSON report file (empty: none)")
	fs.DurationVar(&o.Phase, "phase", 0, "how long the well-behaved client runs in each phase (default 20s, 10s with -quick)")
	fs.IntVar(&o.GoodWrites, "good-writes", 10, "the well-behaved client's writes per second")
	fs.IntVar(&o.GoodReads, "good-reads", 30, "the well-behaved client's reads per second")
	fs.IntVar(&o.BacklogWrites, "backlog-writes", 256, "1 MiB escape-heavy writes queued behind paused consumers")
	fs.IntVar(&o.FloodMax, "flood-max", 0, "most writes of the flood (default 1500, 800 with -quick)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.Phase == 0 {
		o.Phase = map[bool]time.Duration{false: 20 * time.Second, true: 10 * time.Second}[o.Quick]
	}
	if o.FloodMax == 0 {
		o.FloodMax = map[bool]int{false: 1500, true: 800}[o.Quick]
	}
	u, err := url.Parse(o.API)
	if err != nil || u.Scheme != "http" || !load.IsLoopback(u.Hostname()) {
		return o, fmt.Errorf("-api %q: want an http URL on a loopback address (the suite attacks only this machine)", o.API)
	}
	var bad []string
	if o.Phase < time.Second || o.Phase > 10*time.Minute {
		bad = append(bad, fmt.Sprintf("-phase %s outside [1s, 10m]", o.Phase))
	}
	if o.GoodWrites < 1 || o.GoodReads < 1 || o.GoodWrites+o.GoodReads > 2000 {
		bad = append(bad, "-good-writes and -good-reads must be at least 1 and at most 2000 together")
	}
	if o.BacklogWrites < 1 || o.BacklogWrites > 4096 {
		bad = append(bad, "-backlog-writes must be in [1, 4096]")
	}
	if o.FloodMax < 1 || o.FloodMax > 20000 {
		bad = append(bad, "-flood-max must be in [1, 20000]")
	}
	if o.Project == "" {
		bad = append(bad, "-project is empty")
	}
	if len(bad) > 0 {
		return o, fmt.Errorf("kvfleet-hostile: %s", strings.Join(bad, "; "))
	}
	return o, nil
}
