// Package hostinfo records the machine and the fleet a report was measured
// on: the host (cores, memory, kernel, Docker and its storage driver), the
// operating system, the image pinned for each role in deploy/images.env
// and the image each running container of the project actually uses.
package hostinfo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kvfleet/kvfleet/internal/bench"
)

// Schema names the layout of Machine.
const Schema = "kvfleet-machine/1"

// Machine is the host and the fleet at one moment.
type Machine struct {
	Schema  string        `json:"schema"`
	Taken   time.Time     `json:"taken"`
	Host    bench.Machine `json:"host"`
	OS      string        `json:"os"`
	Compose string        `json:"compose_version,omitempty"`
	Project string        `json:"project"`
	// Images is the project's env file's choice (official or standin)
	// and database.
	ImagesMode string `json:"images_mode,omitempty"`
	Database   string `json:"database,omitempty"`
	// Pinned are deploy/images.env's variables.
	Pinned map[string]string `json:"pinned_images,omitempty"`
	// Services are the running containers of the project, one line per
	// service.
	Services []Service `json:"services"`
}

// Service is one Compose service of the running fleet.
type Service struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	Image    string `json:"image"`
	ImageID  string `json:"image_id"`
	// Version is what the image says about itself (its version label),
	// when it says anything.
	Version string `json:"version,omitempty"`
}

// Describe reads the host and the project's containers. envFile is the
// fleet's .env (for the images mode and the database), imagesEnv
// deploy/images.env; either may be missing.
func Describe(ctx context.Context, project, envFile, imagesEnv string) (*Machine, error) {
	m := &Machine{Schema: Schema, Taken: time.Now().UTC().Truncate(time.Second), Project: project,
		Host: bench.DescribeMachine(ctx), OS: osName()}
	if out, err := run(ctx, "docker", "compose", "version", "--short"); err == nil {
		m.Compose = out
	}
	if env, err := bench.ReadEnvFile(envFile); err == nil {
		m.ImagesMode, m.Database = env["KVFLEET_IMAGES"], env["KVFLEET_DB"]
	}
	if pinned, err := bench.ReadEnvFile(imagesEnv); err == nil {
		m.Pinned = pinned
	}
	out, err := run(ctx, "docker", "ps", "--filter", "label=com.docker.compose.project="+project,
		"--format", `{{.Label "com.docker.compose.service"}}|{{.Image}}|{{.ID}}`)
	if err != nil {
		return m, fmt.Errorf("hostinfo: docker ps: %w", err)
	}
	byName := map[string]*Service{}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 || f[0] == "" {
			continue
		}
		s := byName[f[0]]
		if s == nil {
			s = &Service{Name: f[0], Image: f[1]}
			s.ImageID, s.Version = imageOf(ctx, f[2])
			byName[f[0]] = s
		}
		s.Replicas++
	}
	for _, s := range byName {
		m.Services = append(m.Services, *s)
	}
	slices.SortFunc(m.Services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	return m, nil
}

// imageOf returns the short id of a container's image and the image's
// version label, if it has one.
func imageOf(ctx context.Context, container string) (id, version string) {
	out, err := run(ctx, "docker", "inspect", "--format", "{{.Image}}", container)
	if err != nil {
		return "", ""
	}
	id = strings.TrimPrefix(out, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	label, err := run(ctx, "docker", "image", "inspect", "--format",
		`{{index .Config.Labels "org.opencontainers.image.version"}}`, out)
	if err == nil && label != "<no value>" {
		version = label
	}
	return id, version
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return strings.TrimSpace(string(out)), err
}

func osName() string {
	env, err := bench.ReadEnvFile("/etc/os-release")
	if err != nil {
		return ""
	}
	return env["PRETTY_NAME"]
}

// WriteJSON writes m to path, creating its directory.
func WriteJSON(path string, m *Machine) error {
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("hostinfo: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("hostinfo: %w", err)
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}
