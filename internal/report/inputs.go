package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kvfleet/kvfleet/internal/bench"
	"github.com/kvfleet/kvfleet/internal/chaos"
	"github.com/kvfleet/kvfleet/internal/hostinfo"
	"github.com/kvfleet/kvfleet/internal/refsystem"
)

// The input files, in the report's directory.
const (
	FileBench     = "bench.json"
	FileChaos     = "chaos.json"
	FileAutoscale = "autoscale.json"
	FileE2E       = "e2e.json"
	FileReference = "reference.json"
	FileMachine   = "machine.json"
	FileRun       = "run.json"
)

// Inputs are the results a report is made from. A nil field is an input
// that is missing, unreadable or from an earlier run; Missing says which
// and why, by file name.
type Inputs struct {
	Dir       string
	Run       *RunLog
	Bench     *bench.Result
	Chaos     *chaos.Report
	Autoscale *Autoscale
	E2E       *E2E
	Reference *refsystem.Result
	Machine   *hostinfo.Machine
	Missing   map[string]string
}

// Load reads every input in dir. When dir holds a run log, an input
// older than the run's start is left out as stale: a tool that failed
// this time must not pass off its previous result as this run's.
func Load(dir string) (*Inputs, error) {
	in := &Inputs{Dir: dir, Missing: map[string]string{}}
	run, err := ReadRunLog(filepath.Join(dir, FileRun))
	if err != nil {
		return nil, err
	}
	in.Run = run
	var since time.Time
	if run != nil {
		since = run.Started
	}
	if r, err := bench.ReadJSON(filepath.Join(dir, FileBench)); err != nil {
		in.miss(FileBench, err)
	} else if in.fresh(FileBench, r.Started, since) {
		in.Bench = r
	}
	var c chaos.Report
	if err := readJSON(filepath.Join(dir, FileChaos), &c); err != nil {
		in.miss(FileChaos, err)
	} else if in.fresh(FileChaos, c.Started, since) {
		in.Chaos = &c
	}
	var a Autoscale
	if err := readJSON(filepath.Join(dir, FileAutoscale), &a); err != nil {
		in.miss(FileAutoscale, err)
	} else if in.fresh(FileAutoscale, a.Started, since) {
		in.Autoscale = &a
	}
	var e E2E
	if err := readJSON(filepath.Join(dir, FileE2E), &e); err != nil {
		in.miss(FileE2E, err)
	} else if in.fresh(FileE2E, e.Started, since) {
		in.E2E = &e
	}
	var ref refsystem.Result
	if err := readJSON(filepath.Join(dir, FileReference), &ref); err != nil {
		in.miss(FileReference, err)
	} else if in.fresh(FileReference, ref.Started, since) {
		in.Reference = &ref
	}
	var m hostinfo.Machine
	if err := readJSON(filepath.Join(dir, FileMachine), &m); err != nil {
		in.miss(FileMachine, err)
	} else if in.fresh(FileMachine, m.Taken, since) {
		in.Machine = &m
	}
	return in, nil
}

func (in *Inputs) miss(file string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		in.Missing[file] = "no " + file + " in " + in.Dir
		return
	}
	in.Missing[file] = err.Error()
}

// fresh reports whether an input taken at t belongs to the run that
// started at since (any time when there is no run log), and records it
// as missing when not.
func (in *Inputs) fresh(file string, t, since time.Time) bool {
	if since.IsZero() || !t.Before(since) {
		return true
	}
	in.Missing[file] = fmt.Sprintf("%s is from an earlier run (%s), not from this one (started %s)",
		file, t.UTC().Format(time.RFC3339), since.UTC().Format(time.RFC3339))
	return false
}

// Why says why an input is missing, or "" when it is there.
func (in *Inputs) Why(file string) string {
	why := in.Missing[file]
	if why == "" {
		return ""
	}
	step := map[string]string{FileBench: "bench", FileChaos: "chaos", FileAutoscale: "autoscale",
		FileE2E: "e2e", FileReference: "reference", FileMachine: "machine"}[file]
	if s := in.Run.Find(step); s != nil && (s.Skipped != "" || s.ExitCode != 0) {
		why += "; the " + step + " step: " + s.Outcome()
	}
	return why
}

func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
