package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// RunSchema names the layout of RunLog.
const RunSchema = "kvfleet-report-run/1"

// RunLog records the steps of one `make report`: which tools ran, how
// long each took and how it ended, or why it was skipped.
type RunLog struct {
	Schema   string    `json:"schema"`
	Mode     string    `json:"mode"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Steps    []Step    `json:"steps"`
}

// Step is one tool's run.
type Step struct {
	Name     string    `json:"name"`
	Command  string    `json:"command,omitempty"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	ExitCode int       `json:"exit_code"`
	// Skipped says why the step did not run.
	Skipped string `json:"skipped,omitempty"`
}

// Outcome describes how the step ended, for the report.
func (s Step) Outcome() string {
	switch {
	case s.Skipped != "":
		return "skipped: " + s.Skipped
	case s.ExitCode == 0:
		return "ok"
	}
	return fmt.Sprintf("exit status %d", s.ExitCode)
}

// Find returns the step named name, or nil.
func (l *RunLog) Find(name string) *Step {
	if l == nil {
		return nil
	}
	for i := range l.Steps {
		if l.Steps[i].Name == name {
			return &l.Steps[i]
		}
	}
	return nil
}

// ReadRunLog reads the run log at path; a missing file is (nil, nil).
func ReadRunLog(path string) (*RunLog, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var l RunLog
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	return &l, nil
}

// WriteJSON writes v as indented JSON to path, creating its directory.
func WriteJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encode %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
