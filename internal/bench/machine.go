package bench

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// describeMachine reads what the result records about the host.
func describeMachine(ctx context.Context, d *Docker) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(raw)
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryBytes = parseKeyed(bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte(":"), nil), []byte(" kB"), nil))["MemTotal"] * 1024
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	m.DockerVersion, m.StorageDriver, m.CgroupVersion, _ = d.Info(ctx)
	return m
}

func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() [3]float64 {
	var out [3]float64
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	for i, f := range strings.Fields(string(raw)) {
		if i >= 3 {
			break
		}
		out[i], _ = strconv.ParseFloat(f, 64)
	}
	return out
}

// DescribeMachine reads what a result records about the host: cores,
// memory, kernel, Docker's version, storage driver and cgroup version.
func DescribeMachine(ctx context.Context) Machine {
	return describeMachine(ctx, NewDocker("", nil))
}
