package config

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"strconv"
	"time"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// Common holds the settings both binaries share.
type Common struct {
	// OpsAddr serves /metrics, /healthz, /readyz and /debug/pprof, apart
	// from client traffic.
	OpsAddr         string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
	Limits          kv.Limits
	Redis           Redis
	Database        Database
	Broker          Broker
	Cache           Cache

	// printed is every setting read, secrets masked, for the start-up log.
	printed settings
}

// Redis says how to reach the cache.
type Redis struct {
	SentinelAddrs    []string
	MasterName       string
	Addr             string // used instead of Sentinel when SentinelAddrs is empty
	Password         string
	SentinelPassword string
	Timeout          time.Duration
	PoolSize         int
}

// Database says how to reach PostgreSQL or CockroachDB.
type Database struct {
	URL             string
	MaxConns        int
	ConnectTimeout  time.Duration
	QueryTimeout    time.Duration
	MaxConnIdleTime time.Duration
}

// Broker says how to reach RabbitMQ and names the topology.
type Broker struct {
	URLs               []string
	Queue              string
	DeadLetterExchange string
	DeadLetterQueue    string
	DeliveryLimit      int
	DialTimeout        time.Duration
	Heartbeat          time.Duration
	// WriteTimeout bounds each write to the broker's socket.
	WriteTimeout time.Duration
}

// Cache sets entry lifetimes.
type Cache struct {
	TTL         time.Duration
	NotFoundTTL time.Duration
}

// API is the API binary's configuration.
type API struct {
	Common
	HTTPAddr     string
	NodeID       uint64
	MaxBodyBytes int64
	MaxInFlight  int
	// MaxInFlightBytes bounds the request bodies one replica holds at once
	// (httpapi.Config).
	MaxInFlightBytes  int64
	PublishTimeout    time.Duration
	PublisherChannels int
	// PublishPipeline, PublishMaxBatch and PublishMaxBatchBytes tune the
	// publisher's grouping of concurrent writes (queue.PublisherConfig).
	PublishPipeline      int
	PublishMaxBatch      int
	PublishMaxBatchBytes int
	ReadTimeout          time.Duration
	HealthTimeout        time.Duration
	// DrainDelay is how long /readyz answers 503 before the server stops
	// accepting, so that load balancers stop sending first.
	DrainDelay time.Duration
}

// Consumer is the consumer binary's configuration.
type Consumer struct {
	Common
	Prefetch int
	// PrefetchBytes bounds the memory of the messages the broker may have
	// delivered and not yet had acknowledged: the prefetch is lowered so
	// that that many messages of the largest size fit in it.
	PrefetchBytes int
	BatchSize     int
	// BatchBytes bounds the message bodies in one batch, so that a batch of
	// large values still fits in one statement's timeout.
	BatchBytes   int
	BatchWait    time.Duration
	DrainTimeout time.Duration
	RetryMax     time.Duration
	Migrate      bool
	// MigrateWait is how long migrations retry while the database is not
	// ready yet.
	MigrateWait        time.Duration
	TombstoneRetention time.Duration
	PurgeInterval      time.Duration
	// MaxClockSkew refuses writes whose version is further ahead of the
	// consumer's clock.
	MaxClockSkew time.Duration
	// RepairInterval is how often cache entries left stale by a cache
	// outage are looked for and repaired.
	RepairInterval time.Duration
}

func loadCommon(e *env) Common {
	var c Common
	c.OpsAddr = e.address("OPS_ADDR", ":9100")
	switch lvl := e.str("LOG_LEVEL", "info"); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		e.fail("LOG_LEVEL", "%q is not one of debug, info, warn, error", lvl)
	}
	c.ShutdownTimeout = e.duration("SHUTDOWN_TIMEOUT", 20*time.Second, time.Second, 10*time.Minute)
	c.Limits = kv.Limits{
		MaxKeyBytes:   e.integer("MAX_KEY_BYTES", kv.DefaultLimits.MaxKeyBytes, 1, 64<<10),
		MaxValueBytes: e.integer("MAX_VALUE_BYTES", kv.DefaultLimits.MaxValueBytes, 0, 64<<20),
	}

	c.Redis = Redis{
		SentinelAddrs:    e.list("REDIS_SENTINEL_ADDRS", "redis-sentinel-1:26379,redis-sentinel-2:26379,redis-sentinel-3:26379"),
		MasterName:       e.str("REDIS_MASTER_NAME", "kvfleet"),
		Addr:             e.str("REDIS_ADDR", ""),
		Password:         e.secret("REDIS_PASSWORD", true),
		SentinelPassword: e.secret("REDIS_SENTINEL_PASSWORD", false),
		Timeout:          e.duration("REDIS_TIMEOUT", 500*time.Millisecond, 10*time.Millisecond, time.Minute),
		PoolSize:         e.integer("REDIS_POOL_SIZE", 0, 0, 10000),
	}
	if c.Redis.Addr != "" {
		// An explicit single address means "no Sentinel", even though the
		// Sentinel list has a default.
		c.Redis.SentinelAddrs = nil
		e.record("REDIS_SENTINEL_ADDRS", c.Redis.SentinelAddrs)
		e.address("REDIS_ADDR", "")
	}
	for _, a := range c.Redis.SentinelAddrs {
		if _, _, err := splitHostPort(a); err != nil {
			e.fail("REDIS_SENTINEL_ADDRS", "%q is not a host:port address", a)
		}
	}

	c.Database = Database{
		URL:             e.url("DATABASE_URL", "postgres://user:password@host:port/db", "postgres", "postgresql"),
		MaxConns:        e.integer("DATABASE_MAX_CONNS", 8, 1, 1000),
		ConnectTimeout:  e.duration("DATABASE_CONNECT_TIMEOUT", 3*time.Second, 100*time.Millisecond, time.Minute),
		QueryTimeout:    e.duration("DATABASE_QUERY_TIMEOUT", 5*time.Second, 10*time.Millisecond, 10*time.Minute),
		MaxConnIdleTime: e.duration("DATABASE_MAX_CONN_IDLE_TIME", 5*time.Minute, time.Second, 24*time.Hour),
	}

	c.Broker = Broker{
		URLs:               e.urls("AMQP_URLS", "comma-separated amqp://user:password@host:5672/ URLs, one per node", "amqp", "amqps"),
		Queue:              e.str("QUEUE", "kvfleet.writes"),
		DeadLetterExchange: e.str("DEAD_LETTER_EXCHANGE", "kvfleet.writes.dlx"),
		DeadLetterQueue:    e.str("DEAD_LETTER_QUEUE", "kvfleet.writes.dead"),
		DeliveryLimit:      e.integer("DELIVERY_LIMIT", 20, 1, 1000),
		DialTimeout:        e.duration("AMQP_DIAL_TIMEOUT", 3*time.Second, 100*time.Millisecond, time.Minute),
		Heartbeat:          e.duration("AMQP_HEARTBEAT", 10*time.Second, time.Second, 10*time.Minute),
		WriteTimeout:       e.duration("AMQP_WRITE_TIMEOUT", 2*time.Second, 100*time.Millisecond, time.Minute),
	}

	c.Cache = Cache{
		TTL:         e.duration("CACHE_TTL", 300*time.Second, time.Second, 30*24*time.Hour),
		NotFoundTTL: e.duration("CACHE_NOT_FOUND_TTL", 5*time.Second, time.Millisecond, time.Hour),
	}
	return c
}

// LoadAPI reads the API's configuration through getenv (os.Getenv).
func LoadAPI(getenv func(string) string) (API, error) {
	e := &env{getenv: getenv}
	c := API{Common: loadCommon(e)}
	c.HTTPAddr = e.address("HTTP_ADDR", ":8000")
	c.MaxBodyBytes = e.bytes("MAX_BODY_BYTES", 8<<20, 1<<10, 256<<20)
	c.MaxInFlight = e.integer("MAX_IN_FLIGHT", 512, 0, 1<<20)
	c.MaxInFlightBytes = e.bytes("MAX_IN_FLIGHT_BYTES", 32<<20, 0, 16<<30)
	c.PublishTimeout = e.duration("PUBLISH_TIMEOUT", 5*time.Second, 10*time.Millisecond, time.Minute)
	c.PublisherChannels = e.integer("PUBLISHER_CHANNELS", 4, 1, 64)
	c.PublishPipeline = e.integer("PUBLISH_PIPELINE", 8, 1, 1024)
	c.PublishMaxBatch = e.integer("PUBLISH_MAX_BATCH", 64, 1, 4096)
	c.PublishMaxBatchBytes = e.integer("PUBLISH_MAX_BATCH_BYTES", 256<<10, 1<<10, 64<<20)
	if c.PublishPipeline < c.PublisherChannels {
		e.fail("PUBLISH_PIPELINE", "%d is below KVFLEET_PUBLISHER_CHANNELS (%d): a channel would never be used", c.PublishPipeline, c.PublisherChannels)
	}
	c.ReadTimeout = e.duration("READ_TIMEOUT", 3*time.Second, 10*time.Millisecond, time.Minute)
	c.HealthTimeout = e.duration("HEALTH_TIMEOUT", time.Second, 10*time.Millisecond, time.Minute)
	c.DrainDelay = e.duration("DRAIN_DELAY", 0, 0, time.Minute)
	if v, ok := e.lookup("NODE_ID"); ok {
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil || id == 0 {
			e.fail("NODE_ID", "%q is not a positive integer", v)
		}
		c.NodeID = id
	} else {
		c.NodeID = randomNodeID()
	}
	e.record("NODE_ID", c.NodeID)
	// JSON escaping can make a body up to six times the size of the value
	// it carries; the body limit only has to admit the common case, and the
	// value limit is checked after decoding.
	if c.MaxBodyBytes < int64(c.Limits.MaxValueBytes+c.Limits.MaxKeyBytes) {
		e.fail("MAX_BODY_BYTES", "%d is below MAX_VALUE_BYTES + MAX_KEY_BYTES (%d)",
			c.MaxBodyBytes, c.Limits.MaxValueBytes+c.Limits.MaxKeyBytes)
	}
	if c.MaxInFlightBytes != 0 && c.MaxInFlightBytes < c.MaxBodyBytes {
		e.fail("MAX_IN_FLIGHT_BYTES", "%d is below KVFLEET_MAX_BODY_BYTES (%d): a body at the limit would never be admitted",
			c.MaxInFlightBytes, c.MaxBodyBytes)
	}
	c.printed = e.printed
	return c, e.err()
}

// LoadConsumer reads the consumer's configuration through getenv.
func LoadConsumer(getenv func(string) string) (Consumer, error) {
	e := &env{getenv: getenv}
	c := Consumer{Common: loadCommon(e)}
	c.Prefetch = e.integer("PREFETCH", 256, 1, 65535)
	c.PrefetchBytes = e.integer("PREFETCH_BYTES", 64<<20, 1<<20, 16<<30)
	if c.PrefetchBytes < c.Limits.MaxKeyBytes+c.Limits.MaxValueBytes {
		e.fail("PREFETCH_BYTES", "%d is below MAX_KEY_BYTES + MAX_VALUE_BYTES (%d): a message at the limit would not fit",
			c.PrefetchBytes, c.Limits.MaxKeyBytes+c.Limits.MaxValueBytes)
	}
	c.BatchSize = e.integer("BATCH_SIZE", 128, 1, 10000)
	c.BatchBytes = e.integer("BATCH_BYTES", 4<<20, 1<<10, 1<<30)
	c.BatchWait = e.duration("BATCH_WAIT", 10*time.Millisecond, 0, 10*time.Second)
	c.DrainTimeout = e.duration("DRAIN_TIMEOUT", 10*time.Second, 0, 10*time.Minute)
	c.RetryMax = e.duration("RETRY_MAX", 5*time.Second, 10*time.Millisecond, 10*time.Minute)
	c.Migrate = e.boolean("MIGRATE", true)
	c.MigrateWait = e.duration("MIGRATE_WAIT", 60*time.Second, 0, time.Hour)
	c.TombstoneRetention = e.duration("TOMBSTONE_RETENTION", 24*time.Hour, time.Minute, 365*24*time.Hour)
	c.PurgeInterval = e.duration("PURGE_INTERVAL", time.Hour, time.Second, 30*24*time.Hour)
	c.MaxClockSkew = e.duration("MAX_CLOCK_SKEW", time.Minute, time.Second, 24*time.Hour)
	c.RepairInterval = e.duration("REPAIR_INTERVAL", time.Second, 10*time.Millisecond, time.Hour)
	if c.BatchSize > c.Prefetch {
		e.fail("BATCH_SIZE", "%d exceeds KVFLEET_PREFETCH (%d): a batch could never fill", c.BatchSize, c.Prefetch)
	}
	c.printed = e.printed
	return c, e.err()
}

// randomNodeID gives a replica a 63-bit id that no other replica will
// share in practice; it only breaks ties between versions issued in the
// same millisecond.
func randomNodeID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])>>1 | 1
}

// LogValue prints every setting of the binary, secrets masked, in the
// order they were read; API and Consumer print the same way through it.
func (c Common) LogValue() slog.Value { return c.printed.LogValue() }

// HealthcheckURL returns the local URL that a binary's healthcheck mode
// asks: path on the port of the address in variable name (default def). It
// reads nothing else, so a healthcheck needs no secrets.
func HealthcheckURL(getenv func(string) string, name, def, path string) (string, error) {
	e := &env{getenv: getenv}
	addr := e.address(name, def)
	if err := e.err(); err != nil {
		return "", err
	}
	_, port, _ := splitHostPort(addr)
	return "http://127.0.0.1:" + port + path, nil
}

// APIVariables lists every variable the API reads, with the prefix: for
// deployment checks (the Compose file and the Kubernetes manifests must
// set the same ones), taken from the loader itself so that it cannot drift.
func APIVariables() []string { return variablesRead(func(g func(string) string) { _, _ = LoadAPI(g) }) }

// ConsumerVariables lists every variable the consumer reads, with the prefix.
func ConsumerVariables() []string {
	return variablesRead(func(g func(string) string) { _, _ = LoadConsumer(g) })
}

func variablesRead(load func(getenv func(string) string)) []string {
	var names []string
	seen := make(map[string]bool)
	load(func(name string) string {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
		return ""
	})
	return names
}
