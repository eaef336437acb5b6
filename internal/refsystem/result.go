package refsystem

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kvfleet/kvfleet/internal/bench"
)

// Schema names the layout of Result.
const Schema = "kvfleet-reference/1"

// Result is one run of the reference measurements.
type Result struct {
	Schema   string    `json:"schema"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Mode     string    `json:"mode"`
	Method   []string  `json:"method"`
	Systems  []System  `json:"systems"`
	Notes    []string  `json:"notes,omitempty"`
}

// System is one reference system and what it did.
type System struct {
	Name    string `json:"name"`    // etcd, redis
	Version string `json:"version"` // as the binary reports it
	// Error says why it was not measured (not installed, did not start).
	Error string `json:"error,omitempty"`
	Ops   []Op   `json:"ops,omitempty"`
}

// Op is one operation's closed-loop phase.
type Op struct {
	Name string `json:"name"` // put, range, set, get
	// Kind is what the fleet's figure compares with: "read" or "write".
	Kind  string      `json:"kind"`
	Phase bench.Phase `json:"phase"`
	// ServerCores is the CPU the server process used during the phase.
	ServerCores float64 `json:"server_cores"`
}

// Find returns the named system's op, or nil.
func (r *Result) Find(system, op string) *Op {
	for i := range r.Systems {
		if r.Systems[i].Name != system {
			continue
		}
		for j := range r.Systems[i].Ops {
			if r.Systems[i].Ops[j].Name == op {
				return &r.Systems[i].Ops[j]
			}
		}
	}
	return nil
}

// WriteJSON writes r to path, creating its directory.
func WriteJSON(path string, r *Result) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("refsystem: encode: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("refsystem: %w", err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("refsystem: %w", err)
	}
	return nil
}
