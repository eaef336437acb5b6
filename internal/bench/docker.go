package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RunLabel marks every container the benchmark starts, with the run's id
// as its value, so that leftovers of an interrupted run can be found
// (docker ps -a --filter label=kvfleet.bench.run).
const RunLabel = "kvfleet.bench.run"

// Docker runs the docker CLI. It remembers every container it starts, and
// Cleanup removes exactly those, by id.
type Docker struct {
	runID string
	// env is added to the CLI's environment: secrets reach a container as
	// "-e NAME" (the value taken from the CLI's environment), never on a
	// command line.
	env []string

	mu      sync.Mutex
	started []string
}

// NewDocker returns a Docker for the run runID.
func NewDocker(runID string, env []string) *Docker {
	return &Docker{runID: runID, env: env}
}

// command runs docker with args, bounded by timeout, and returns its
// standard output.
func (d *Docker) command(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), d.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", args[0], err, strings.TrimSpace(lastLine(stderr.String())))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Run starts a detached container in the role role (a label, and the
// service name its CPU is accounted under) and returns its id; args are
// what follows "docker run -d" and the labels.
func (d *Docker) Run(ctx context.Context, role string, args ...string) (string, error) {
	full := append([]string{"run", "-d", "--label", RunLabel + "=" + d.runID, "--label", "kvfleet.bench.role=" + role}, args...)
	id, err := d.command(ctx, time.Minute, full...)
	if id != "" && !strings.ContainsAny(id, " \n") {
		// Remembered even when run failed after creating it.
		d.mu.Lock()
		d.started = append(d.started, id)
		d.mu.Unlock()
	}
	if err != nil {
		return "", err
	}
	return id, nil
}

// Started returns the containers started so far.
func (d *Docker) Started() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.started)
}

// Cleanup removes every container the run started. It runs even when ctx
// has ended (an interrupted run), with a timeout of its own.
func (d *Docker) Cleanup(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	ids := d.Started()
	// A container created by a "docker run" that then failed has no id on
	// its output; the run's label, unique to this run, finds it.
	if out, err := d.command(ctx, 30*time.Second, "ps", "-aq", "--no-trunc", "--filter", "label="+RunLabel+"="+d.runID); err == nil {
		for id := range strings.FieldsSeq(out) {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := d.command(ctx, time.Minute, append([]string{"rm", "-f", "-v"}, ids...)...)
	if err == nil {
		d.mu.Lock()
		d.started = slices.DeleteFunc(d.started, func(id string) bool { return slices.Contains(ids, id) })
		d.mu.Unlock()
	}
	return err
}

// Remove removes one container the run started.
func (d *Docker) Remove(ctx context.Context, id string) error {
	_, err := d.command(context.WithoutCancel(ctx), time.Minute, "rm", "-f", "-v", id)
	if err == nil {
		d.mu.Lock()
		d.started = slices.DeleteFunc(d.started, func(s string) bool { return s == id })
		d.mu.Unlock()
	}
	return err
}

// Wait waits for a container to exit, at most timeout, and returns its
// exit code.
func (d *Docker) Wait(ctx context.Context, id string, timeout time.Duration) (int, error) {
	out, err := d.command(ctx, timeout, "wait", id)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(out)
}

// Logs returns what a container wrote to its standard output and error.
func (d *Docker) Logs(ctx context.Context, id string) (stdout, stderr string, err error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, "docker", "logs", id)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), e.String(), fmt.Errorf("docker logs: %w", err)
	}
	return o.String(), e.String(), nil
}

// RunToEnd starts a container, waits for it to exit and returns its
// standard output; a non-zero exit is an error carrying its standard
// error.
func (d *Docker) RunToEnd(ctx context.Context, role string, timeout time.Duration, args ...string) (string, error) {
	id, err := d.Run(ctx, role, args...)
	if err != nil {
		return "", err
	}
	return d.Finish(ctx, role, id, timeout)
}

// Finish waits for a container started by Run to exit, at most timeout,
// and returns its standard output; a non-zero exit is an error carrying
// its standard error.
func (d *Docker) Finish(ctx context.Context, role, id string, timeout time.Duration) (string, error) {
	code, err := d.Wait(ctx, id, timeout)
	stdout, stderr, lerr := d.Logs(ctx, id)
	switch {
	case err != nil:
		return stdout, fmt.Errorf("%s: %w", role, err)
	case lerr != nil:
		return stdout, fmt.Errorf("%s: %w", role, lerr)
	case code != 0:
		return stdout, fmt.Errorf("%s exited with %d: %s", role, code, strings.TrimSpace(lastLine(stderr)))
	}
	return stdout, nil
}

// Follow streams a running container's standard output, line by line, to
// line until the container ends or ctx does. It returns when the stream
// ends.
func (d *Docker) Follow(ctx context.Context, id string, line func(string)) error {
	cmd := exec.CommandContext(ctx, "docker", "logs", "-f", id)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("docker logs -f: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("docker logs -f: %w", err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line(sc.Text())
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("docker logs -f: %w", err)
	}
	return nil
}

// ConnectNetwork attaches a container to a network.
func (d *Docker) ConnectNetwork(ctx context.Context, network, id string) error {
	_, err := d.command(ctx, 30*time.Second, "network", "connect", network, id)
	return err
}

// HostPort returns the host port a container's port (e.g. "80/tcp") is
// published on.
func (d *Docker) HostPort(ctx context.Context, id, port string) (int, error) {
	out, err := d.command(ctx, 30*time.Second, "port", id, port)
	if err != nil {
		return 0, err
	}
	// "127.0.0.1:49153", possibly one line per address.
	first, _, _ := strings.Cut(out, "\n")
	i := strings.LastIndexByte(first, ':')
	p, err := strconv.Atoi(strings.TrimSpace(first[i+1:]))
	if err != nil {
		return 0, fmt.Errorf("docker port %s: unexpected %q", id, out)
	}
	return p, nil
}

// Info returns the Docker engine's version, storage driver and cgroup
// version.
func (d *Docker) Info(ctx context.Context) (version, driver, cgroup string, err error) {
	out, err := d.command(ctx, 30*time.Second, "info", "--format", "{{.ServerVersion}}|{{.Driver}}|{{.CgroupVersion}}")
	if err != nil {
		return "", "", "", err
	}
	parts := strings.Split(out, "|")
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2], nil
}

// ProjectContainers lists the running containers of a Compose project.
func (d *Docker) ProjectContainers(ctx context.Context, project string) ([]Container, error) {
	out, err := d.command(ctx, 30*time.Second, "ps", "--no-trunc", "--filter", "label=com.docker.compose.project="+project,
		"--format", `{{.ID}}|{{.Label "com.docker.compose.service"}}`)
	if err != nil {
		return nil, err
	}
	return parseContainers(out, false), nil
}

// OwnContainers lists the running containers this run started, by role.
func (d *Docker) OwnContainers(ctx context.Context) ([]Container, error) {
	out, err := d.command(ctx, 30*time.Second, "ps", "--no-trunc", "--filter", "label="+RunLabel+"="+d.runID,
		"--format", `{{.ID}}|bench-{{.Label "kvfleet.bench.role"}}`)
	if err != nil {
		return nil, err
	}
	return parseContainers(out, true), nil
}

func parseContainers(out string, own bool) []Container {
	var cs []Container
	for line := range strings.SplitSeq(out, "\n") {
		id, svc, ok := strings.Cut(strings.TrimSpace(line), "|")
		if !ok || id == "" {
			continue
		}
		cs = append(cs, Container{ID: id, Service: svc, Own: own})
	}
	return cs
}

// OtherProjects lists the Compose projects other than project that have
// running containers.
func (d *Docker) OtherProjects(ctx context.Context, project string) ([]string, error) {
	out, err := d.command(ctx, 30*time.Second, "ps", "--format", `{{.Label "com.docker.compose.project"}}`)
	if err != nil {
		return nil, err
	}
	var others []string
	for p := range strings.SplitSeq(out, "\n") {
		if p = strings.TrimSpace(p); p != "" && p != project && !slices.Contains(others, p) {
			others = append(others, p)
		}
	}
	slices.Sort(others)
	return others, nil
}

// AddressOn returns a container's IP address on a network.
func (d *Docker) AddressOn(ctx context.Context, id, network string) (string, error) {
	out, err := d.command(ctx, 30*time.Second, "inspect", "--format",
		`{{with index .NetworkSettings.Networks "`+network+`"}}{{.IPAddress}}{{end}}`, id)
	if err != nil {
		return "", err
	}
	if out == "" {
		return "", fmt.Errorf("bench: container %.12s is not on network %s", id, network)
	}
	return out, nil
}

// NetworkExists reports whether a network exists.
func (d *Docker) NetworkExists(ctx context.Context, network string) bool {
	_, err := d.command(ctx, 30*time.Second, "network", "inspect", "--format", "{{.Name}}", network)
	return err == nil
}

// ImageExists reports whether an image is present locally.
func (d *Docker) ImageExists(ctx context.Context, image string) bool {
	_, err := d.command(ctx, 30*time.Second, "image", "inspect", "--format", "{{.Id}}", image)
	return err == nil
}

// ErrNoDocker is returned when the docker CLI is missing.
var ErrNoDocker = errors.New("bench: the docker CLI is not on PATH")

// HealthIntervals returns the healthcheck interval of each container that
// has one, by id (Docker's default of 30 s when the check sets none).
func (d *Docker) HealthIntervals(ctx context.Context, ids []string) (map[string]time.Duration, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := d.command(ctx, 30*time.Second, append([]string{"inspect", "--format",
		`{{.Id}}|{{with .Config.Healthcheck}}{{if .Test}}{{index .Test 0}}|{{.Interval}}{{end}}{{end}}`}, ids...)...)
	if err != nil {
		return nil, err
	}
	return parseHealthIntervals(out), nil
}

// parseHealthIntervals reads "id|kind|interval" lines; a container with
// no healthcheck, or one that disables it ("NONE"), is left out.
func parseHealthIntervals(out string) map[string]time.Duration {
	intervals := map[string]time.Duration{}
	for line := range strings.SplitSeq(out, "\n") {
		parts := strings.Split(strings.TrimSpace(line), "|")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "NONE" {
			continue
		}
		// Inspect prints the interval in nanoseconds; a duration ("10s")
		// is read too.
		interval, err := time.ParseDuration(parts[2])
		if ns, nerr := strconv.ParseInt(parts[2], 10, 64); nerr == nil {
			interval, err = time.Duration(ns), nil
		}
		if err != nil {
			continue
		}
		if interval <= 0 {
			interval = 30 * time.Second // Docker's default
		}
		intervals[parts[0]] = interval
	}
	return intervals
}

// Pause freezes containers (their processes stop; their connections stay
// open); Unpause lets them go on.
func (d *Docker) Pause(ctx context.Context, ids []string) error {
	_, err := d.command(ctx, time.Minute, append([]string{"pause"}, ids...)...)
	return err
}

// Unpause lets paused containers go on. It runs even when ctx has ended,
// so that an interrupted run never leaves the fleet's containers frozen.
func (d *Docker) Unpause(ctx context.Context, ids []string) error {
	_, err := d.command(context.WithoutCancel(ctx), time.Minute, append([]string{"unpause"}, ids...)...)
	return err
}
