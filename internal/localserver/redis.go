package localserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	redisMasterName = "kvfleet"
	sentinelQuorum  = 2
	sentinelCount   = 3
	// failoverTimeout bounds WaitForFailover when its ctx has no deadline:
	// with down-after-milliseconds 1000 a failover takes a few seconds, and
	// a split leader vote is retried after 2×failover-timeout (10 s).
	failoverTimeout = 60 * time.Second
	// killMasterTimeout bounds the sentinel query in KillMaster.
	killMasterTimeout = 10 * time.Second
)

// RedisSet is a Redis master, one replica and three sentinels monitoring
// them, all on loopback.
type RedisSet struct {
	// MasterName is the name the sentinels monitor the master under.
	MasterName string
	// Password is requirepass and masterauth of the data nodes.
	Password string
	// SentinelPassword is requirepass of the sentinels; it differs from
	// Password so that a client mixing them up fails.
	SentinelPassword string
	// SentinelAddrs are the three sentinels, "127.0.0.1:port".
	SentinelAddrs []string
	// MasterAddr is the initial master; after a failover ask CurrentMaster.
	MasterAddr string
	// ReplicaAddr is the initial replica.
	ReplicaAddr string

	mu        sync.Mutex
	nodes     map[string]*process // data nodes by address
	sentinels []*process
}

// StartRedis starts a master, a replica of it and three sentinels (quorum
// 2, down-after-milliseconds 1000, failover-timeout 5000) under dir, without
// persistence. It returns once the replica is in sync and every sentinel
// knows the master, the replica and the two other sentinels, so that a
// failover can start as soon as the test needs one.
func StartRedis(ctx context.Context, dir string) (_ *RedisSet, err error) {
	ctx, cancel := context.WithTimeout(ctx, redisStartTimeout)
	defer cancel()
	serverBin, err := FindBinary("redis-server")
	if err != nil {
		return nil, err
	}
	sentinelBin, err := FindBinary("redis-sentinel")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2 + sentinelCount)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localserver: redis dir: %w", err)
	}

	r := &RedisSet{
		MasterName:       redisMasterName,
		Password:         randomHex(16),
		SentinelPassword: randomHex(16),
		MasterAddr:       loopback(ports[0]),
		ReplicaAddr:      loopback(ports[1]),
		nodes:            make(map[string]*process),
	}
	defer func() {
		if err != nil {
			_ = r.Close()
		}
	}()

	master, err := r.startNode(dir, serverBin, "redis master", ports[0], "")
	if err != nil {
		return nil, err
	}
	replica, err := r.startNode(dir, serverBin, "redis replica", ports[1], fmt.Sprintf("replicaof 127.0.0.1 %d\n", ports[0]))
	if err != nil {
		return nil, err
	}
	// The sentinels start after the replica is in sync: a sentinel INFOs the
	// master as soon as it connects and then only every 10 s, so starting
	// them earlier can add 10 s before they see the replica.
	err = waitReady(ctx, "redis replica sync", []*process{master, replica}, func(ctx context.Context) error {
		c := r.nodeClient(r.ReplicaAddr)
		defer c.Close()
		info, err := c.InfoMap(ctx, "replication").Result()
		if err != nil {
			return notReady(err)
		}
		if s := info["Replication"]["master_link_status"]; s != "up" {
			return notReady(fmt.Errorf("master_link_status %q", s))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	for _, port := range ports[2:] {
		if err := r.startSentinel(dir, sentinelBin, port, ports[0]); err != nil {
			return nil, err
		}
	}
	for i, addr := range r.SentinelAddrs {
		err := waitReady(ctx, "sentinel "+addr, []*process{r.sentinels[i]}, func(ctx context.Context) error {
			c := r.sentinelClient(addr)
			defer c.Close()
			m, err := c.Master(ctx, r.MasterName).Result()
			if err != nil {
				return notReady(err)
			}
			want := map[string]string{
				"flags":               "master",
				"num-slaves":          "1",
				"num-other-sentinels": strconv.Itoa(sentinelCount - 1),
			}
			for k, w := range want {
				if m[k] != w {
					return notReady(fmt.Errorf("%s is %q, want %q", k, m[k], w))
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// startNode starts one data node with its own working directory; extra is
// appended to its config.
func (r *RedisSet) startNode(dir, bin, name string, port int, extra string) (*process, error) {
	nodeDir := filepath.Join(dir, fmt.Sprintf("redis-%d", port))
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return nil, fmt.Errorf("localserver: %s dir: %w", name, err)
	}
	// save "" and appendonly no: throwaway data needs no persistence, and
	// fsyncs would slow the servers down. Diskless sync without delay makes the replica's
	// initial sync immediate instead of waiting 5 s for more replicas.
	conf := fmt.Sprintf(`bind 127.0.0.1
port %d
daemonize no
logfile ""
dir %s
save ""
appendonly no
requirepass %s
masterauth %s
repl-diskless-sync yes
repl-diskless-sync-delay 0
%s`, port, nodeDir, r.Password, r.Password, extra)
	confPath := filepath.Join(nodeDir, "redis.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("localserver: %s config: %w", name, err)
	}
	p, err := startProcess(procSpec{
		name:    fmt.Sprintf("%s (port %d)", name, port),
		path:    bin,
		args:    []string{confPath},
		dir:     nodeDir,
		env:     os.Environ(),
		logPath: filepath.Join(nodeDir, "redis.log"),
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.nodes[loopback(port)] = p
	r.mu.Unlock()
	return p, nil
}

// startSentinel starts one sentinel monitoring the master on masterPort.
func (r *RedisSet) startSentinel(dir, bin string, port, masterPort int) error {
	sDir := filepath.Join(dir, fmt.Sprintf("sentinel-%d", port))
	if err := os.MkdirAll(sDir, 0o755); err != nil {
		return fmt.Errorf("localserver: sentinel dir: %w", err)
	}
	// Sentinels authenticate to each other with their own requirepass. The
	// config file must be writable: a sentinel rewrites it with what it
	// learns.
	conf := fmt.Sprintf(`bind 127.0.0.1
port %d
daemonize no
logfile ""
dir %s
requirepass %s
sentinel resolve-hostnames no
sentinel announce-ip 127.0.0.1
sentinel monitor %s 127.0.0.1 %d %d
sentinel auth-pass %s %s
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 5000
sentinel parallel-syncs %s 1
`, port, sDir, r.SentinelPassword,
		r.MasterName, masterPort, sentinelQuorum,
		r.MasterName, r.Password,
		r.MasterName, r.MasterName, r.MasterName)
	confPath := filepath.Join(sDir, "sentinel.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("localserver: sentinel config: %w", err)
	}
	p, err := startProcess(procSpec{
		name:    fmt.Sprintf("redis sentinel (port %d)", port),
		path:    bin,
		args:    []string{confPath},
		dir:     sDir,
		env:     os.Environ(),
		logPath: filepath.Join(sDir, "sentinel.log"),
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.sentinels = append(r.sentinels, p)
	r.SentinelAddrs = append(r.SentinelAddrs, loopback(port))
	r.mu.Unlock()
	return nil
}

// Close kills all five processes and waits for them to exit. It may be
// called more than once.
func (r *RedisSet) Close() error {
	r.mu.Lock()
	procs := append([]*process(nil), r.sentinels...)
	for _, p := range r.nodes {
		procs = append(procs, p)
	}
	r.mu.Unlock()
	// Sentinels first, so that they do not start a failover while the data
	// nodes go down.
	var errs []error
	for _, p := range procs {
		if err := p.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// KillMaster SIGKILLs the data node that the sentinels currently report as
// master and waits for it to exit. The sentinels then fail over to the
// replica; WaitForFailover waits for that.
func (r *RedisSet) KillMaster() error {
	// The signature has no context (a test calls it as a plain action), so
	// the sentinel query gets a bounded one of its own.
	ctx, cancel := context.WithTimeout(context.Background(), killMasterTimeout)
	defer cancel()
	addr, err := r.CurrentMaster(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	p := r.nodes[addr]
	r.mu.Unlock()
	if p == nil {
		return fmt.Errorf("localserver: sentinels report master %s, which is not one of this set's nodes", addr)
	}
	if p.exited() {
		return fmt.Errorf("localserver: master %s is already down", addr)
	}
	return p.kill()
}

// CurrentMaster returns the master address the first answering sentinel
// reports.
func (r *RedisSet) CurrentMaster(ctx context.Context) (string, error) {
	var errs []error
	for _, s := range r.SentinelAddrs {
		addr, err := r.askMaster(ctx, s)
		if err == nil {
			return addr, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s, err))
	}
	return "", fmt.Errorf("localserver: no sentinel answered: %w", errors.Join(errs...))
}

// WaitForFailover polls the sentinels until every one that answers (at
// least a quorum) reports the same master, different from old, and that
// master answers ROLE as master. It returns the new master's address.
// Requiring agreement keeps a client that asks any sentinel from being sent
// to the dead master.
func (r *RedisSet) WaitForFailover(ctx context.Context, old string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, failoverTimeout)
	defer cancel()
	r.mu.Lock()
	sentinels := append([]*process(nil), r.sentinels...)
	r.mu.Unlock()
	var addr string
	err := waitReady(ctx, "redis failover from "+old, sentinels, func(ctx context.Context) error {
		seen := map[string]int{}
		answered := 0
		for _, s := range r.SentinelAddrs {
			a, err := r.askMaster(ctx, s)
			if err != nil {
				continue
			}
			answered++
			seen[a]++
		}
		if answered < sentinelQuorum {
			return notReady(fmt.Errorf("only %d sentinels answered", answered))
		}
		if len(seen) != 1 {
			return notReady(fmt.Errorf("sentinels disagree: %v", seen))
		}
		for a := range seen {
			addr = a
		}
		if addr == old {
			return notReady(errors.New("sentinels still report the old master"))
		}
		c := r.nodeClient(addr)
		defer c.Close()
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil {
			return notReady(fmt.Errorf("ROLE on %s: %w", addr, err))
		}
		if len(role) == 0 || role[0] != "master" {
			return notReady(fmt.Errorf("%s is not master yet: %v", addr, role))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return addr, nil
}

// askMaster asks one sentinel for the master's address.
func (r *RedisSet) askMaster(ctx context.Context, sentinel string) (string, error) {
	c := r.sentinelClient(sentinel)
	defer c.Close()
	hostPort, err := c.GetMasterAddrByName(ctx, r.MasterName).Result()
	if err != nil {
		return "", err
	}
	if len(hostPort) != 2 {
		return "", fmt.Errorf("unexpected reply %v", hostPort)
	}
	return net.JoinHostPort(hostPort[0], hostPort[1]), nil
}

// nodeClient is a client for the data node at addr; sentinelClient is one
// for a sentinel. They are short-lived: one per check, closed after it, so
// that nothing outlives a failed check. Their callers poll, so the clients
// do not retry, and the check's context bounds every call.
func (r *RedisSet) nodeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		Password:              r.Password,
		MaxRetries:            -1,
		PoolSize:              1,
		ContextTimeoutEnabled: true,
	})
}

func (r *RedisSet) sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr:                  addr,
		Password:              r.SentinelPassword,
		MaxRetries:            -1,
		PoolSize:              1,
		ContextTimeoutEnabled: true,
	})
}

func loopback(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
