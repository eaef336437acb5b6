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
}

// Cache sets entry lifetimes.
type Cache struct {
	TTL         time.Duration
	NotFoundTTL time.Duration
}

// API is the API binary's configuration.
type API struct {
	Common
	HTTPAddr          string
	NodeID            uint64
	MaxBodyBytes      int64
	PublishTimeout    time.Duration
	PublisherChannels int
	ReadTimeout       time.Duration
	HealthTimeout     time.Duration
	// DrainDelay is how long /readyz answers 503 before the server stops
	// accepting, so that load balancers stop sending first.
	DrainDelay time.Duration
}

// Consumer is the consumer binary's configuration.
type Consumer struct {
	Common
	Prefetch     int
	BatchSize    int
	BatchWait    time.Duration
	DrainTimeout time.Duration
	RetryMax     time.Duration
	Migrate      bool
	// MigrateWait is how long migrations retry while the database is not
	// ready yet.
	MigrateWait        time.Duration
	TombstoneRetention time.Duration
	PurgeInterval      time.Duration
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
		Password:         e.required("REDIS_PASSWORD"),
		SentinelPassword: e.str("REDIS_SENTINEL_PASSWORD", ""),
		Timeout:          e.duration("REDIS_TIMEOUT", 500*time.Millisecond, 10*time.Millisecond, time.Minute),
		PoolSize:         e.integer("REDIS_POOL_SIZE", 0, 0, 10000),
	}
	if c.Redis.Addr != "" {
		// An explicit single address means "no Sentinel", even though the
		// Sentinel list has a default.
		c.Redis.SentinelAddrs = nil
		e.address("REDIS_ADDR", "")
	}
	for _, a := range c.Redis.SentinelAddrs {
		if _, _, err := splitHostPort(a); err != nil {
			e.fail("REDIS_SENTINEL_ADDRS", "%q is not a host:port address", a)
		}
	}

	c.Database = Database{
		URL:             e.str("DATABASE_URL", ""),
		MaxConns:        e.integer("DATABASE_MAX_CONNS", 8, 1, 1000),
		ConnectTimeout:  e.duration("DATABASE_CONNECT_TIMEOUT", 3*time.Second, 100*time.Millisecond, time.Minute),
		QueryTimeout:    e.duration("DATABASE_QUERY_TIMEOUT", 5*time.Second, 10*time.Millisecond, 10*time.Minute),
		MaxConnIdleTime: e.duration("DATABASE_MAX_CONN_IDLE_TIME", 5*time.Minute, time.Second, 24*time.Hour),
	}
	if c.Database.URL == "" {
		e.fail("DATABASE_URL", "is required (postgres://user:password@host:port/db)")
	} else {
		e.checkURL("DATABASE_URL", c.Database.URL, "postgres", "postgresql")
	}

	c.Broker = Broker{
		URLs:               e.list("AMQP_URLS", ""),
		Queue:              e.str("QUEUE", "kvfleet.writes"),
		DeadLetterExchange: e.str("DEAD_LETTER_EXCHANGE", "kvfleet.writes.dlx"),
		DeadLetterQueue:    e.str("DEAD_LETTER_QUEUE", "kvfleet.writes.dead"),
		DeliveryLimit:      e.integer("DELIVERY_LIMIT", 20, 1, 1000),
		DialTimeout:        e.duration("AMQP_DIAL_TIMEOUT", 3*time.Second, 100*time.Millisecond, time.Minute),
		Heartbeat:          e.duration("AMQP_HEARTBEAT", 10*time.Second, time.Second, 10*time.Minute),
	}
	if len(c.Broker.URLs) == 0 {
		e.fail("AMQP_URLS", "is required (comma-separated amqp://user:password@host:5672/ URLs, one per node)")
	}
	for _, u := range c.Broker.URLs {
		e.checkURL("AMQP_URLS", u, "amqp", "amqps")
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
	c.PublishTimeout = e.duration("PUBLISH_TIMEOUT", 5*time.Second, 10*time.Millisecond, time.Minute)
	c.PublisherChannels = e.integer("PUBLISHER_CHANNELS", 4, 1, 64)
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
	// JSON escaping can make a body up to six times the size of the value
	// it carries; the body limit only has to admit the common case, and the
	// value limit is checked after decoding.
	if c.MaxBodyBytes < int64(c.Limits.MaxValueBytes+c.Limits.MaxKeyBytes) {
		e.fail("MAX_BODY_BYTES", "%d is below MAX_VALUE_BYTES + MAX_KEY_BYTES (%d)",
			c.MaxBodyBytes, c.Limits.MaxValueBytes+c.Limits.MaxKeyBytes)
	}
	return c, e.err()
}

// LoadConsumer reads the consumer's configuration through getenv.
func LoadConsumer(getenv func(string) string) (Consumer, error) {
	e := &env{getenv: getenv}
	c := Consumer{Common: loadCommon(e)}
	c.Prefetch = e.integer("PREFETCH", 256, 1, 65535)
	c.BatchSize = e.integer("BATCH_SIZE", 128, 1, 10000)
	c.BatchWait = e.duration("BATCH_WAIT", 10*time.Millisecond, 0, 10*time.Second)
	c.DrainTimeout = e.duration("DRAIN_TIMEOUT", 10*time.Second, 0, 10*time.Minute)
	c.RetryMax = e.duration("RETRY_MAX", 5*time.Second, 10*time.Millisecond, 10*time.Minute)
	c.Migrate = e.boolean("MIGRATE", true)
	c.MigrateWait = e.duration("MIGRATE_WAIT", 60*time.Second, 0, time.Hour)
	c.TombstoneRetention = e.duration("TOMBSTONE_RETENTION", 24*time.Hour, time.Minute, 365*24*time.Hour)
	c.PurgeInterval = e.duration("PURGE_INTERVAL", time.Hour, time.Second, 30*24*time.Hour)
	if c.BatchSize > c.Prefetch {
		e.fail("BATCH_SIZE", "%d exceeds KVFLEET_PREFETCH (%d): a batch could never fill", c.BatchSize, c.Prefetch)
	}
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

// LogValue prints the shared settings with secrets masked.
func (c Common) LogValue() slog.Value {
	urls := make([]string, len(c.Broker.URLs))
	for i, u := range c.Broker.URLs {
		urls[i] = maskURL(u)
	}
	return slog.GroupValue(
		slog.String("ops_addr", c.OpsAddr),
		slog.String("log_level", c.LogLevel.String()),
		slog.Int("max_key_bytes", c.Limits.MaxKeyBytes),
		slog.Int("max_value_bytes", c.Limits.MaxValueBytes),
		slog.Any("redis_sentinel_addrs", c.Redis.SentinelAddrs),
		slog.String("redis_master_name", c.Redis.MasterName),
		slog.String("redis_addr", c.Redis.Addr),
		slog.String("redis_password", mask(c.Redis.Password)),
		slog.String("redis_sentinel_password", mask(c.Redis.SentinelPassword)),
		slog.String("database_url", maskURL(c.Database.URL)),
		slog.Any("amqp_urls", urls),
		slog.String("queue", c.Broker.Queue),
		slog.Int("delivery_limit", c.Broker.DeliveryLimit),
		slog.String("cache_ttl", c.Cache.TTL.String()),
	)
}

// LogValue prints the API's settings with secrets masked.
func (c API) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("common", c.Common),
		slog.String("http_addr", c.HTTPAddr),
		slog.Uint64("node_id", c.NodeID),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
		slog.String("publish_timeout", c.PublishTimeout.String()),
		slog.Int("publisher_channels", c.PublisherChannels),
	)
}

// LogValue prints the consumer's settings with secrets masked.
func (c Consumer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("common", c.Common),
		slog.Int("prefetch", c.Prefetch),
		slog.Int("batch_size", c.BatchSize),
		slog.String("batch_wait", c.BatchWait.String()),
		slog.Bool("migrate", c.Migrate),
		slog.String("tombstone_retention", c.TombstoneRetention.String()),
	)
}

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
