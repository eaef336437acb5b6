package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Container is a container whose CPU and memory are accounted.
type Container struct {
	ID      string // full id
	Service string // Compose service, or bench-* for the benchmark's own
	Own     bool   // started by the benchmark, not part of the fleet
}

// Accounting reads the CPU and memory of containers from their cgroups
// (v1 as Docker's cgroupfs driver lays them out, or v2), the host's CPU
// from /proc/stat, and the Docker userland proxies' CPU from /proc.
type Accounting struct {
	root       string // the cgroup mount, normally /sys/fs/cgroup
	proc       string // normally /proc
	cores      int
	proxyPorts []int // host ports whose docker-proxy is accounted

	mu    sync.Mutex
	paths map[string]cgroupDirs // by container id
}

type cgroupDirs struct {
	cpu, mem string
	v2       bool
}

// NewAccounting returns an accounting of a host with cores cores.
func NewAccounting(root, proc string, cores int) *Accounting {
	return &Accounting{root: root, proc: proc, cores: cores, paths: map[string]cgroupDirs{}}
}

// WatchProxy adds the docker-proxy of a published host port.
func (a *Accounting) WatchProxy(port int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Contains(a.proxyPorts, port) {
		a.proxyPorts = append(a.proxyPorts, port)
	}
}

// dirs finds a container's cgroup directories.
func (a *Accounting) dirs(id string) (cgroupDirs, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d, ok := a.paths[id]; ok {
		return d, true
	}
	candidates := []cgroupDirs{
		{cpu: filepath.Join(a.root, "cpuacct/docker", id), mem: filepath.Join(a.root, "memory/docker", id)},
		{cpu: filepath.Join(a.root, "cpuacct/system.slice/docker-"+id+".scope"), mem: filepath.Join(a.root, "memory/system.slice/docker-"+id+".scope")},
		{cpu: filepath.Join(a.root, "system.slice/docker-"+id+".scope"), mem: filepath.Join(a.root, "system.slice/docker-"+id+".scope"), v2: true},
		{cpu: filepath.Join(a.root, "docker", id), mem: filepath.Join(a.root, "docker", id), v2: true},
	}
	for _, d := range candidates {
		probe := "cpuacct.usage"
		if d.v2 {
			probe = "cpu.stat"
		}
		if _, err := os.Stat(filepath.Join(d.cpu, probe)); err == nil {
			a.paths[id] = d
			return d, true
		}
	}
	return cgroupDirs{}, false
}

// Snapshot is the cumulative CPU counters at a moment.
type Snapshot struct {
	At        time.Time
	HostBusy  uint64            // jiffies
	HostTotal uint64            // jiffies
	HostSteal uint64            // jiffies the hypervisor gave to others
	CPU       map[string]uint64 // nanoseconds, by container id
	Proxy     time.Duration
	Self      time.Duration
	// Host are the processes outside any container, but this one and the
	// Docker proxies, by pid: what else the machine was doing.
	Host map[int]hostProc
}

// hostProc is a process's name and CPU time, its reaped children's
// included (a build tool's compilers show up in it once they exit).
type hostProc struct {
	comm string
	cpu  time.Duration
}

// Snapshot reads the counters of containers now. Containers whose
// cgroup cannot be read are left out.
func (a *Accounting) Snapshot(containers []Container) Snapshot {
	s := Snapshot{At: time.Now(), CPU: map[string]uint64{}}
	if raw, err := os.ReadFile(filepath.Join(a.proc, "stat")); err == nil {
		s.HostBusy, s.HostTotal, s.HostSteal, _ = parseProcStat(raw)
	}
	for _, c := range containers {
		if ns, ok := a.cpuOf(c.ID); ok {
			s.CPU[c.ID] = ns
		}
	}
	s.Proxy = a.proxyCPU()
	s.Host = a.hostProcs()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.Self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

func (a *Accounting) cpuOf(id string) (uint64, bool) {
	d, ok := a.dirs(id)
	if !ok {
		return 0, false
	}
	if !d.v2 {
		raw, err := os.ReadFile(filepath.Join(d.cpu, "cpuacct.usage"))
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		return v, err == nil
	}
	raw, err := os.ReadFile(filepath.Join(d.cpu, "cpu.stat"))
	if err != nil {
		return 0, false
	}
	usec, ok := parseKeyed(raw)["usage_usec"]
	return usec * 1000, ok
}

// MemoryOf returns a container's resident memory (anonymous plus mapped
// files) and its cgroup's whole usage.
func (a *Accounting) MemoryOf(id string) (rss, usage uint64, ok bool) {
	d, found := a.dirs(id)
	if !found {
		return 0, 0, false
	}
	stat, err := os.ReadFile(filepath.Join(d.mem, "memory.stat"))
	if err != nil {
		return 0, 0, false
	}
	m := parseKeyed(stat)
	usageFile := "memory.usage_in_bytes"
	if d.v2 {
		rss = m["anon"] + m["file_mapped"]
		usageFile = "memory.current"
	} else {
		rss = m["rss"] + m["mapped_file"]
	}
	if raw, err := os.ReadFile(filepath.Join(d.mem, usageFile)); err == nil {
		usage, _ = strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	}
	return rss, usage, true
}

// proxyCPU sums the CPU time of the docker-proxy processes of the
// watched ports.
func (a *Accounting) proxyCPU() time.Duration {
	a.mu.Lock()
	ports := slices.Clone(a.proxyPorts)
	a.mu.Unlock()
	if len(ports) == 0 {
		return 0
	}
	entries, err := os.ReadDir(a.proc)
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(a.proc, e.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "docker-proxy" {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || !slices.Contains(ports, proxyHostPort(cmdline)) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
			total += procCPU(stat)
		}
	}
	return total
}

// hostProcs reads the CPU time of every process that is in no
// container's cgroup, other than this one and the Docker proxies.
func (a *Accounting) hostProcs() map[int]hostProc {
	entries, err := os.ReadDir(a.proc)
	if err != nil {
		return nil
	}
	self := os.Getpid()
	out := map[int]hostProc{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join(a.proc, e.Name())
		if cg, err := os.ReadFile(filepath.Join(dir, "cgroup")); err != nil || bytes.Contains(cg, []byte("docker")) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		comm, cpu := procNameCPU(stat)
		if comm == "docker-proxy" || cpu == 0 {
			continue
		}
		out[pid] = hostProc{comm: comm, cpu: cpu}
	}
	return out
}

// procNameCPU returns the command name of a /proc/<pid>/stat line and its
// utime+stime+cutime+cstime, at 100 ticks per second.
func procNameCPU(stat []byte) (string, time.Duration) {
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", 0
	}
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 15 {
		return "", 0
	}
	var ticks uint64
	for _, f := range fields[11:15] {
		v, _ := strconv.ParseUint(f, 10, 64)
		ticks += v
	}
	return string(stat[open+1 : end]), time.Duration(ticks) * 10 * time.Millisecond
}

// parseProcStat returns the busy and total jiffies of the "cpu" line of
// /proc/stat; idle and iowait are not busy.
func parseProcStat(raw []byte) (busy, total, steal uint64, err error) {
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, 0, fmt.Errorf("bench: /proc/stat: unexpected first line %q", line)
	}
	for i, f := range fields[1:] {
		if i >= 8 { // guest time is already counted in user
			break
		}
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("bench: /proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
		if i == 7 {
			steal = v
		}
	}
	return busy, total, steal, nil
}

// parseKeyed reads "key value" lines (memory.stat, cpu.stat).
func parseKeyed(raw []byte) map[string]uint64 {
	m := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

// proxyHostPort returns the -host-port of a docker-proxy command line
// (NUL-separated), or 0.
func proxyHostPort(cmdline []byte) int {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	for i, a := range args {
		if a == "-host-port" && i+1 < len(args) {
			p, _ := strconv.Atoi(args[i+1])
			return p
		}
	}
	return 0
}

// procCPU returns utime+stime of a /proc/<pid>/stat line, at 100 ticks
// per second (Linux's USER_HZ).
func procCPU(stat []byte) time.Duration {
	// The command name may hold spaces; the fields start after its ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is the state (field 3); utime and stime are fields 14, 15.
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(fields[11], 10, 64)
	s, _ := strconv.ParseUint(fields[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// Window turns two snapshots into CPU used in cores, by service.
func Window(a, b Snapshot, containers []Container, cores int) *CPUWindow {
	secs := b.At.Sub(a.At).Seconds()
	if secs <= 0 {
		return nil
	}
	w := &CPUWindow{Seconds: round1(secs), Cores: cores, ByService: map[string]float64{}}
	if dt := b.HostTotal - a.HostTotal; b.HostTotal > a.HostTotal {
		w.HostBusy = round3(float64(b.HostBusy-a.HostBusy) / float64(dt) * float64(cores))
		w.Steal = round3(float64(b.HostSteal-a.HostSteal) / float64(dt) * float64(cores))
	}
	for _, c := range containers {
		before, ok1 := a.CPU[c.ID]
		after, ok2 := b.CPU[c.ID]
		if !ok2 || after < before {
			continue
		}
		if !ok1 {
			before = 0 // started during the window
		}
		used := float64(after-before) / 1e9 / secs
		w.ByService[c.Service] += used
		if !c.Own {
			w.Fleet += used
		}
	}
	for k, v := range w.ByService {
		w.ByService[k] = round3(v)
	}
	w.Fleet = round3(w.Fleet)
	w.Client = round3((b.Self - a.Self).Seconds() / secs)
	w.DockerProxy = round3((b.Proxy - a.Proxy).Seconds() / secs)
	known := w.Client + w.DockerProxy + w.Steal
	for _, v := range w.ByService {
		known += v
	}
	w.Other = round3(max(w.HostBusy-known, 0))
	byName := map[string]float64{}
	for pid, after := range b.Host {
		before, ok := a.Host[pid]
		if !ok || after.cpu < before.cpu {
			before.cpu = 0 // started during the window
		}
		byName[after.comm] += (after.cpu - before.cpu).Seconds() / secs
	}
	for name, v := range byName {
		if v >= 0.02 {
			if w.HostProcesses == nil {
				w.HostProcesses = map[string]float64{}
			}
			w.HostProcesses[name] = round3(v)
		}
	}
	return w
}

// Processes returns the CPU time of each process in a container's cgroup
// now, by pid: its own user and system time, its reaped children's left
// out (Docker's healthchecks are not its children; their time counts in
// the cgroup alone).
func (a *Accounting) Processes(id string) map[int]time.Duration {
	d, ok := a.dirs(id)
	if !ok {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(d.cpu, "cgroup.procs"))
	if err != nil {
		return nil
	}
	out := map[int]time.Duration{}
	for f := range strings.FieldsSeq(string(raw)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(a.proc, f, "stat")); err == nil {
			out[pid] = procCPU(stat)
		}
	}
	return out
}

// StartedProcesses is the CPU of the window from first to last, by
// service, that went to processes that were not running at both ends of
// it: a container's cgroup time less what its processes present in both
// before and after used. At idle that is the cost of starting programs:
// Docker's exec healthchecks first (the probe, and runc's set-up inside
// the container), a database's backend forks next. Take before just ahead
// of first and after just behind last: the processes that lasted are then
// measured over a little more than the window, and the started ones, if
// anything, under-counted.
func StartedProcesses(containers []Container, first, last Snapshot, before, after map[string]map[int]time.Duration) map[string]float64 {
	secs := last.At.Sub(first.At).Seconds()
	if secs <= 0 {
		return nil
	}
	out := map[string]float64{}
	for _, c := range containers {
		b, ok1 := first.CPU[c.ID]
		e, ok2 := last.CPU[c.ID]
		if !ok1 || !ok2 || e < b || c.Own {
			continue
		}
		var lasting time.Duration
		for pid, end := range after[c.ID] {
			if start, ok := before[c.ID][pid]; ok && end >= start {
				lasting += end - start
			}
		}
		started := time.Duration(e-b) - lasting
		out[c.Service] += max(started.Seconds(), 0) / secs
	}
	for k, v := range out {
		out[k] = round3(v)
	}
	return out
}
