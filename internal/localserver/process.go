package localserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// killTimeout bounds how long we wait for a process to disappear after
// SIGKILL; only a process stuck in the kernel takes longer.
const killTimeout = 30 * time.Second

// logTailLines is how much of a server's log a start error carries: enough
// for the reason a server refused to start, not the whole boot chatter.
const logTailLines = 30

// procSpec describes one process to start.
type procSpec struct {
	name    string // for messages, e.g. "redis master"
	path    string
	args    []string
	dir     string // working directory
	env     []string
	logPath string // stdout and stderr are appended here
	cred    *syscall.Credential
	stdin   io.Reader // nil: /dev/null
}

// process is one started process, leader of its own process group. The
// goroutine that waits for it belongs to the process: done is closed when it
// has returned, and every stop path waits for done, so none is leaked.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // valid once done is closed
}

// startProcess starts s in a new process group with its output appended to
// s.logPath.
func startProcess(s procSpec) (*process, error) {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("localserver: open log for %s: %w", s.name, err)
	}
	// The child gets its own copy of the descriptor; ours is not needed
	// once it has started.
	defer logf.Close()

	cmd := exec.Command(s.path, s.args...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Stdin = s.stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A group of its own lets us kill the helpers a server forks
		// (RabbitMQ's shell wrappers, PostgreSQL's backends) in one call.
		Setpgid: true,
		// If our process dies without running its cleanups (a test's
		// -timeout panic, a SIGKILL), take the server down with it rather than leave
		// it holding ports on the machine.
		Pdeathsig:  syscall.SIGKILL,
		Credential: s.cred,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("localserver: start %s (%s): %w", s.name, s.path, err)
	}
	p := &process{name: s.name, logPath: s.logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended; call it only after done.
func (p *process) exitError() error {
	if p.waitErr == nil {
		return fmt.Errorf("%s exited with status 0", p.name)
	}
	return fmt.Errorf("%s exited: %w", p.name, p.waitErr)
}

// signalGroup sends sig to every process in the group. ESRCH means the group
// is already gone, which is what the caller wants.
func (p *process) signalGroup(sig syscall.Signal) error {
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("localserver: signal %s to %s: %w", sig, p.name, err)
	}
	return nil
}

// kill SIGKILLs the whole group and waits for the leader to be reaped. Once
// the leader has been reaped its pid may in time be reused, so a second
// kill does nothing rather than signal a group that is not ours.
func (p *process) kill() error {
	if p.exited() {
		return nil
	}
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("localserver: %s (pid %d) still running %s after SIGKILL", p.name, p.cmd.Process.Pid, killTimeout)
	}
}

// stop asks the leader to shut down with sig, waits up to grace for it, and
// SIGKILLs the group if it does not comply. Processes the leader left behind
// are killed right after it exits, so that nothing holds the server's ports;
// the kernel does not reuse a pid while a group of that id has members.
func (p *process) stop(sig syscall.Signal, grace time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("localserver: signal %s to %s: %w", sig, p.name, err)
	}
	select {
	case <-p.done:
		return p.signalGroup(syscall.SIGKILL)
	case <-time.After(grace):
	}
	if err := p.kill(); err != nil {
		return err
	}
	return fmt.Errorf("localserver: %s ignored %s for %s and was killed", p.name, sig, grace)
}

// run starts s and waits for it to exit, killing its group if ctx ends
// first. It is for the short-lived tools (initdb, epmd -daemon).
func run(ctx context.Context, s procSpec) error {
	p, err := startProcess(s)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		if err := p.kill(); err != nil {
			return err
		}
		return withLog(fmt.Errorf("localserver: %s: %w", s.name, ctx.Err()), s.logPath)
	}
	if p.waitErr != nil {
		return withLog(fmt.Errorf("localserver: %s: %w", s.name, p.waitErr), s.logPath)
	}
	return nil
}

// withLog appends the end of the log at path to err, because the reason a
// server did not start is almost always in its own log, not in our error.
func withLog(err error, path string) error {
	tail, terr := tailFile(path, logTailLines)
	if terr != nil {
		return fmt.Errorf("%w\n(no log: %v)", err, terr)
	}
	return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, path, tail)
}

// tailFile returns the last n lines of the file at path.
func tailFile(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// Boot logs are small; reading the last 64 KiB is plenty for n lines.
	const window = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		if _, err := f.Seek(-window, io.SeekEnd); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "", err
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimRight(string(bytes.Join(lines, []byte("\n"))), "\n"), nil
}

// restartable is a server process that a test may stop and start again:
// the one lifecycle PostgreSQL and RabbitMQ share.
type restartable struct {
	mu   sync.Mutex
	proc *process
}

// start runs spec and waits until ready passes; a process that never gets
// ready is killed. It refuses to start a second copy.
func (r *restartable) start(ctx context.Context, what string, spec procSpec, ready func(context.Context) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && !r.proc.exited() {
		return fmt.Errorf("localserver: %s is already running", what)
	}
	proc, err := startProcess(spec)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, what, []*process{proc}, ready); err != nil {
		_ = proc.kill()
		return err
	}
	r.proc = proc
	return nil
}

// stop sends sig, waits up to grace for the process to exit, then kills it.
func (r *restartable) stop(sig syscall.Signal, grace time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return nil
	}
	err := r.proc.stop(sig, grace)
	r.proc = nil
	return err
}

// kill ends the process at once.
func (r *restartable) kill() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return nil
	}
	err := r.proc.kill()
	r.proc = nil
	return err
}
