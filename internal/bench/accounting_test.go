package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	raw := []byte("cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n")
	busy, total, steal, err := parseProcStat(raw)
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal = 160; + idle 800 + iowait 20.
	if busy != 160 || total != 980 || steal != 0 {
		t.Fatalf("busy %d total %d steal %d, want 160 980 0", busy, total, steal)
	}
	_, _, steal, _ = parseProcStat([]byte("cpu  100 5 50 800 20 3 2 9 7 0\n"))
	if steal != 9 {
		t.Fatalf("steal %d, want 9", steal)
	}
	if _, _, _, err := parseProcStat([]byte("intr 1 2 3\n")); err == nil {
		t.Fatal("accepted a file without the cpu line")
	}
}

func TestProxyAndProcParsing(t *testing.T) {
	cmd := []byte("/usr/sbin/docker-proxy\x00-proto\x00tcp\x00-host-ip\x00127.0.0.1\x00-host-port\x008000\x00-container-ip\x00172.29.0.5\x00-container-port\x0080\x00")
	if p := proxyHostPort(cmd); p != 8000 {
		t.Fatalf("proxyHostPort = %d, want 8000", p)
	}
	if p := proxyHostPort([]byte("/usr/sbin/nginx\x00-g\x00")); p != 0 {
		t.Fatalf("a command without -host-port: %d", p)
	}
	stat := []byte("6009 (docker proxy) S 1 6009 6009 0 -1 4194560 1234 0 0 0 250 130 0 0 20 0 9 0 1500 1526048 3098 rest")
	if got := procCPU(stat); got != 3800*time.Millisecond {
		t.Fatalf("procCPU = %v, want 3.8s (380 ticks)", got)
	}
}

func TestAccountingReadsCgroupV1(t *testing.T) {
	root, proc := t.TempDir(), t.TempDir()
	id := "abc123"
	write := func(path, content string) { writeFile(t, path, content) }
	write(filepath.Join(root, "cpuacct/docker", id, "cpuacct.usage"), "2500000000\n")
	write(filepath.Join(root, "memory/docker", id, "memory.stat"), "cache 100\nrss 30000000\nmapped_file 2000000\n")
	write(filepath.Join(root, "memory/docker", id, "memory.usage_in_bytes"), "40000000\n")
	write(filepath.Join(proc, "stat"), "cpu 10 0 10 80 0 0 0 0 0 0\n")
	write(filepath.Join(proc, "77", "comm"), "docker-proxy\n")
	write(filepath.Join(proc, "77", "cmdline"), "docker-proxy\x00-host-port\x008000\x00")
	write(filepath.Join(proc, "77", "stat"), "77 (docker-proxy) S 1 1 1 0 -1 0 0 0 0 0 100 100 0 0")
	a := NewAccounting(root, proc, 2)
	a.WatchProxy(8000)
	cs := []Container{{ID: id, Service: "api"}, {ID: "gone", Service: "api"}}
	s1 := a.Snapshot(cs)
	if s1.CPU[id] != 2_500_000_000 || s1.Proxy != 2*time.Second || s1.HostTotal != 100 || s1.HostBusy != 20 {
		t.Fatalf("snapshot %+v", s1)
	}
	if _, ok := s1.CPU["gone"]; ok {
		t.Fatal("a container without a cgroup was accounted")
	}
	rss, usage, ok := a.MemoryOf(id)
	if !ok || rss != 32_000_000 || usage != 40_000_000 {
		t.Fatalf("MemoryOf = %d %d %v", rss, usage, ok)
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Unix(100, 0)
	cs := []Container{{ID: "a1", Service: "api"}, {ID: "a2", Service: "api"}, {ID: "n", Service: "nginx"}, {ID: "r", Service: "bench-ref", Own: true}}
	a := Snapshot{At: t0, HostBusy: 1000, HostTotal: 5000, CPU: map[string]uint64{"a1": 1e9, "a2": 2e9, "n": 0}, Self: time.Second, Proxy: 0}
	b := Snapshot{At: t0.Add(10 * time.Second), HostBusy: 2600, HostTotal: 7000,
		CPU: map[string]uint64{"a1": 6e9, "a2": 5e9, "n": 4e9, "r": 3e9}, Self: 4 * time.Second, Proxy: 2 * time.Second}
	w := Window(a, b, cs, 2)
	// Host: 1600 busy of 2000 jiffies on 2 cores = 1.6 cores.
	if w.HostBusy != 1.6 || w.ByService["api"] != 0.8 || w.ByService["nginx"] != 0.4 || w.ByService["bench-ref"] != 0.3 {
		t.Fatalf("window %+v", w)
	}
	if w.Fleet != 1.2 || w.Client != 0.3 || w.DockerProxy != 0.2 || w.Seconds != 10 {
		t.Fatalf("fleet %v client %v proxy %v seconds %v", w.Fleet, w.Client, w.DockerProxy, w.Seconds)
	}
	if Window(b, a, cs, 2) != nil {
		t.Fatal("a window that runs backwards")
	}
}

func TestHostProcesses(t *testing.T) {
	name, cpu := procNameCPU([]byte("4242 (go build x) R 1 1 1 0 -1 0 0 0 0 0 100 50 300 50 20 0 1 0"))
	if name != "go build x" || cpu != 5*time.Second {
		t.Fatalf("procNameCPU = %q %v, want \"go build x\" 5s (500 ticks with reaped children)", name, cpu)
	}
	t0 := time.Unix(0, 0)
	a := Snapshot{At: t0, Host: map[int]hostProc{1: {"dockerd", time.Second}, 2: {"staticcheck", 0}}}
	b := Snapshot{At: t0.Add(10 * time.Second), HostBusy: 10, HostTotal: 10,
		Host: map[int]hostProc{1: {"dockerd", 1100 * time.Millisecond}, 2: {"staticcheck", 6 * time.Second}, 3: {"go", time.Second}}}
	w := Window(a, b, nil, 2)
	if w.HostProcesses["staticcheck"] != 0.6 || w.HostProcesses["go"] != 0.1 || w.HostProcesses["dockerd"] != 0 {
		t.Fatalf("host processes %v", w.HostProcesses)
	}
	r := &Result{Fleet: Fleet{CachedGet: &Phase{Name: "cached GET", CPU: &CPUWindow{Other: 0.6, HostProcesses: w.HostProcesses}}}}
	d := Disturbances(r)
	if len(d) != 1 || d[0] != "cached GET: 0.60 cores went outside the fleet and the benchmark (host processes: staticcheck 0.60, go 0.10)" {
		t.Fatalf("Disturbances = %q", d)
	}
}

// TestStartedProcesses: a container whose cgroup used 3 s in a 10 s window
// while its lasting processes used 1 s spent 2 s, 0.2 cores, on processes
// started meanwhile; a process that exited during the window counts as
// started, and the benchmark's own containers are left out.
func TestStartedProcesses(t *testing.T) {
	root, proc := t.TempDir(), t.TempDir()
	write := func(path, content string) { writeFile(t, path, content) }
	stat := func(pid string, ticks int) {
		write(filepath.Join(proc, pid, "stat"), pid+" (redis server) S 1 1 1 0 -1 0 0 0 0 0 "+
			strconv.Itoa(ticks)+" 0 7 9 20 0 1 0 1 1 1")
	}
	write(filepath.Join(root, "cpuacct/docker/redis/cpuacct.usage"), "1000000000\n")
	write(filepath.Join(root, "cpuacct/docker/redis/cgroup.procs"), "1\n40\n")
	stat("1", 100)
	stat("40", 5) // a healthcheck, gone by the end
	a := NewAccounting(root, proc, 2)
	got := a.Processes("redis")
	if len(got) != 2 || got[1] != time.Second || got[40] != 50*time.Millisecond {
		t.Fatalf("Processes = %v, want pid 1 1s and pid 40 50ms", got)
	}
	if a.Processes("unknown") != nil {
		t.Fatal("a container without a cgroup has processes")
	}
	write(filepath.Join(root, "cpuacct/docker/redis/cgroup.procs"), "1\n")
	stat("1", 200)
	after := a.Processes("redis")

	containers := []Container{{ID: "redis", Service: "redis-master"}, {ID: "ref", Service: "bench-ref", Own: true}}
	t0 := time.Now()
	first := Snapshot{At: t0, CPU: map[string]uint64{"redis": 1e9, "ref": 0}}
	last := Snapshot{At: t0.Add(10 * time.Second), CPU: map[string]uint64{"redis": 4e9, "ref": 5e9}}
	started := StartedProcesses(containers, first, last, map[string]map[int]time.Duration{"redis": got}, map[string]map[int]time.Duration{"redis": after})
	if len(started) != 1 || started["redis-master"] != 0.2 {
		t.Fatalf("StartedProcesses = %v, want redis-master 0.2 alone", started)
	}
	// Processes that used more than the cgroup (read at other moments)
	// never give a negative share.
	started = StartedProcesses(containers, first, Snapshot{At: last.At, CPU: map[string]uint64{"redis": 1.5e9}},
		map[string]map[int]time.Duration{"redis": got}, map[string]map[int]time.Duration{"redis": after})
	if started["redis-master"] != 0 {
		t.Fatalf("started = %v, want 0", started["redis-master"])
	}
	if StartedProcesses(containers, first, first, nil, nil) != nil {
		t.Fatal("an empty window has a result")
	}
}

func TestParseHealthIntervals(t *testing.T) {
	got := parseHealthIntervals("aaa|CMD|10000000000\nbbb|CMD-SHELL|30s\nccc|\nddd|NONE|0\neee|CMD|0\nfff|CMD|soon\n")
	want := map[string]time.Duration{"aaa": 10 * time.Second, "bbb": 30 * time.Second, "eee": 30 * time.Second}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for id, iv := range want {
		if got[id] != iv {
			t.Fatalf("%s: %v, want %v (all: %v)", id, got[id], iv, got)
		}
	}
}

// writeFile writes a fixture file, making its directory.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
