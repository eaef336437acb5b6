package config_test

import (
	"bytes"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/config"
	"github.com/kvfleet/kvfleet/internal/kv"
)

const (
	redisPassword    = "redis-s3cret-pw"
	sentinelPassword = "sentinel-s3cret-pw"
	dbPassword       = "db-s3cret-pw"
	amqpPassword1    = "amqp-s3cret-pw-1"
	amqpPassword2    = "amqp-s3cret-pw-2"
)

// required is the least a fleet must set: the secrets and where they go.
func required() map[string]string {
	return map[string]string{
		"KVFLEET_REDIS_PASSWORD": redisPassword,
		"KVFLEET_DATABASE_URL":   "postgres://kv:" + dbPassword + "@haproxy:5432/kv?sslmode=disable",
		"KVFLEET_AMQP_URLS":      "amqp://kv:" + amqpPassword1 + "@rabbitmq-1:5672/, amqp://kv:" + amqpPassword2 + "@rabbitmq-2:5672/",
	}
}

// with returns required() plus the given variables ("" deletes one).
func with(kvs ...string) func(string) string {
	env := required()
	for i := 0; i+1 < len(kvs); i += 2 {
		if kvs[i+1] == "" {
			delete(env, kvs[i])
			continue
		}
		env[kvs[i]] = kvs[i+1]
	}
	return getenv(env)
}

func getenv(env map[string]string) func(string) string {
	env = maps.Clone(env)
	return func(name string) string { return env[name] }
}

func TestLoadAPIDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.LoadAPI(with())
	if err != nil {
		t.Fatalf("LoadAPI with only the required variables: %v", err)
	}
	checkCommonDefaults(t, c.Common)
	checks := []struct {
		name      string
		got, want any
	}{
		{"HTTPAddr", c.HTTPAddr, ":8000"},
		{"MaxBodyBytes", c.MaxBodyBytes, int64(8 << 20)},
		{"PublishTimeout", c.PublishTimeout, 5 * time.Second},
		{"PublisherChannels", c.PublisherChannels, 4},
		{"PublishPipeline", c.PublishPipeline, 8},
		{"PublishMaxBatch", c.PublishMaxBatch, 64},
		{"PublishMaxBatchBytes", c.PublishMaxBatchBytes, 256 << 10},
		{"ReadTimeout", c.ReadTimeout, 3 * time.Second},
		{"HealthTimeout", c.HealthTimeout, time.Second},
		{"DrainDelay", c.DrainDelay, time.Duration(0)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if c.NodeID == 0 {
		t.Errorf("NodeID = 0, want a random non-zero id")
	}
	other, err := config.LoadAPI(with())
	if err != nil {
		t.Fatal(err)
	}
	if other.NodeID == c.NodeID {
		t.Errorf("two replicas drew the same NodeID %d", c.NodeID)
	}
}

func TestLoadConsumerDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.LoadConsumer(with())
	if err != nil {
		t.Fatalf("LoadConsumer with only the required variables: %v", err)
	}
	checkCommonDefaults(t, c.Common)
	checks := []struct {
		name      string
		got, want any
	}{
		{"Prefetch", c.Prefetch, 256},
		{"BatchSize", c.BatchSize, 128},
		{"BatchWait", c.BatchWait, 10 * time.Millisecond},
		{"DrainTimeout", c.DrainTimeout, 10 * time.Second},
		{"RetryMax", c.RetryMax, 5 * time.Second},
		{"Migrate", c.Migrate, true},
		{"TombstoneRetention", c.TombstoneRetention, 24 * time.Hour},
		{"PurgeInterval", c.PurgeInterval, time.Hour},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func checkCommonDefaults(t *testing.T, c config.Common) {
	t.Helper()
	checks := []struct {
		name      string
		got, want any
	}{
		{"OpsAddr", c.OpsAddr, ":9100"},
		{"LogLevel", c.LogLevel, slog.LevelInfo},
		{"ShutdownTimeout", c.ShutdownTimeout, 20 * time.Second},
		{"Limits", c.Limits, kv.DefaultLimits},
		{"Redis.MasterName", c.Redis.MasterName, "kvfleet"},
		{"Redis.Addr", c.Redis.Addr, ""},
		{"Redis.Password", c.Redis.Password, redisPassword},
		{"Redis.SentinelPassword", c.Redis.SentinelPassword, ""},
		{"Redis.Timeout", c.Redis.Timeout, 500 * time.Millisecond},
		{"Redis.PoolSize", c.Redis.PoolSize, 0},
		{"Database.URL", c.Database.URL, required()["KVFLEET_DATABASE_URL"]},
		{"Database.MaxConns", c.Database.MaxConns, 8},
		{"Database.ConnectTimeout", c.Database.ConnectTimeout, 3 * time.Second},
		{"Database.QueryTimeout", c.Database.QueryTimeout, 5 * time.Second},
		{"Database.MaxConnIdleTime", c.Database.MaxConnIdleTime, 5 * time.Minute},
		{"Broker.Queue", c.Broker.Queue, "kvfleet.writes"},
		{"Broker.DeadLetterExchange", c.Broker.DeadLetterExchange, "kvfleet.writes.dlx"},
		{"Broker.DeadLetterQueue", c.Broker.DeadLetterQueue, "kvfleet.writes.dead"},
		{"Broker.DeliveryLimit", c.Broker.DeliveryLimit, 20},
		{"Broker.DialTimeout", c.Broker.DialTimeout, 3 * time.Second},
		{"Broker.Heartbeat", c.Broker.Heartbeat, 10 * time.Second},
		{"Cache.TTL", c.Cache.TTL, 300 * time.Second},
		{"Cache.NotFoundTTL", c.Cache.NotFoundTTL, 5 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	wantSentinels := []string{"redis-sentinel-1:26379", "redis-sentinel-2:26379", "redis-sentinel-3:26379"}
	if !slices.Equal(c.Redis.SentinelAddrs, wantSentinels) {
		t.Errorf("Redis.SentinelAddrs = %q, want %q", c.Redis.SentinelAddrs, wantSentinels)
	}
	wantURLs := []string{
		"amqp://kv:" + amqpPassword1 + "@rabbitmq-1:5672/",
		"amqp://kv:" + amqpPassword2 + "@rabbitmq-2:5672/",
	}
	if !slices.Equal(c.Broker.URLs, wantURLs) {
		t.Errorf("Broker.URLs = %q, want %q (split on commas, trimmed)", c.Broker.URLs, wantURLs)
	}
}

func TestValuesAreRead(t *testing.T) {
	t.Parallel()
	c, err := config.LoadConsumer(with(
		"KVFLEET_LOG_LEVEL", " debug ",
		"KVFLEET_REDIS_SENTINEL_ADDRS", "s1:26379, ,s2:26380,",
		"KVFLEET_REDIS_SENTINEL_PASSWORD", sentinelPassword,
		"KVFLEET_MAX_VALUE_BYTES", "0",
		"KVFLEET_DATABASE_URL", "postgresql://kv@db/kv",
		"KVFLEET_AMQP_URLS", "amqps://kv@mq:5671/",
		"KVFLEET_MIGRATE", "false",
		"KVFLEET_PREFETCH", "10",
		"KVFLEET_BATCH_SIZE", "10",
		"KVFLEET_BATCH_WAIT", "0s",
	))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case c.LogLevel != slog.LevelDebug:
		t.Errorf("LogLevel = %v, want debug", c.LogLevel)
	case !slices.Equal(c.Redis.SentinelAddrs, []string{"s1:26379", "s2:26380"}):
		t.Errorf("SentinelAddrs = %q", c.Redis.SentinelAddrs)
	case c.Redis.SentinelPassword != sentinelPassword:
		t.Errorf("SentinelPassword not read")
	case c.Limits.MaxValueBytes != 0:
		t.Errorf("MaxValueBytes = %d, want 0", c.Limits.MaxValueBytes)
	case c.Migrate:
		t.Errorf("Migrate = true, want false")
	case c.Prefetch != 10 || c.BatchSize != 10 || c.BatchWait != 0:
		t.Errorf("Prefetch, BatchSize, BatchWait = %d, %d, %v", c.Prefetch, c.BatchSize, c.BatchWait)
	}

	a, err := config.LoadAPI(with("KVFLEET_NODE_ID", "42", "KVFLEET_HTTP_ADDR", "0.0.0.0:8080", "KVFLEET_MAX_BODY_BYTES", "2097152"))
	if err != nil {
		t.Fatal(err)
	}
	if a.NodeID != 42 || a.HTTPAddr != "0.0.0.0:8080" || a.MaxBodyBytes != 2<<20 {
		t.Errorf("NodeID, HTTPAddr, MaxBodyBytes = %d, %q, %d", a.NodeID, a.HTTPAddr, a.MaxBodyBytes)
	}
}

func TestRequiredVariables(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"KVFLEET_REDIS_PASSWORD", "KVFLEET_DATABASE_URL", "KVFLEET_AMQP_URLS"} {
		for _, value := range []string{"", "   ", " , "} {
			if value == " , " && name != "KVFLEET_AMQP_URLS" {
				continue
			}
			env := required()
			env[name] = value
			_, apiErr := config.LoadAPI(getenv(env))
			_, consumerErr := config.LoadConsumer(getenv(env))
			for binary, err := range map[string]error{"api": apiErr, "consumer": consumerErr} {
				if err == nil || !strings.Contains(err.Error(), name) {
					t.Errorf("%s with %s=%q: error %v, want one naming %s", binary, name, value, err, name)
				}
			}
		}
	}
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		consumer    bool // a consumer-only variable
		alsoSet     []string
	}{
		{name: "OPS_ADDR", value: "9100"},
		{name: "OPS_ADDR", value: ":http"},
		{name: "OPS_ADDR", value: ":65536"},
		{name: "OPS_ADDR", value: "host:"},
		{name: "LOG_LEVEL", value: "verbose"},
		{name: "SHUTDOWN_TIMEOUT", value: "20"},
		{name: "SHUTDOWN_TIMEOUT", value: "1ms"},
		{name: "MAX_KEY_BYTES", value: "1k"},
		{name: "MAX_KEY_BYTES", value: "0"},
		{name: "MAX_VALUE_BYTES", value: "-1"},
		{name: "REDIS_SENTINEL_ADDRS", value: "sentinel-1:26379,sentinel-2"},
		{name: "REDIS_ADDR", value: "redis"},
		{name: "REDIS_TIMEOUT", value: "fast"},
		{name: "REDIS_POOL_SIZE", value: "many"},
		{name: "REDIS_POOL_SIZE", value: "-1"},
		{name: "DATABASE_URL", value: "mysql://kv:" + dbPassword + "@db:3306/kv"},
		{name: "DATABASE_URL", value: "haproxy:5432"},
		{name: "DATABASE_URL", value: "postgres://kv:" + dbPassword + "@[::1/kv"},
		{name: "DATABASE_MAX_CONNS", value: "0"},
		{name: "DATABASE_CONNECT_TIMEOUT", value: "3"},
		{name: "DATABASE_QUERY_TIMEOUT", value: "1h1x"},
		{name: "DATABASE_MAX_CONN_IDLE_TIME", value: "48h"},
		{name: "AMQP_URLS", value: "http://kv:" + amqpPassword1 + "@mq:5672/"},
		{name: "AMQP_URLS", value: "amqp://kv@mq-1:5672/,redis://kv:" + amqpPassword2 + "@mq-2:5672/"},
		{name: "AMQP_URLS", value: "amqp://kv:" + amqpPassword1 + "@mq:5672/%zz"},
		{name: "DELIVERY_LIMIT", value: "twenty"},
		{name: "AMQP_DIAL_TIMEOUT", value: "1ns"},
		{name: "AMQP_HEARTBEAT", value: "10"},
		{name: "CACHE_TTL", value: "0s"},
		{name: "CACHE_NOT_FOUND_TTL", value: "soon"},
		{name: "HTTP_ADDR", value: "8000"},
		{name: "MAX_BODY_BYTES", value: "8MiB"},
		{name: "MAX_BODY_BYTES", value: "2048"}, // below MAX_VALUE_BYTES + MAX_KEY_BYTES
		{name: "MAX_IN_FLIGHT_BYTES", value: "-1"},
		{name: "MAX_IN_FLIGHT_BYTES", value: "4194304"}, // below the 8 MiB body limit
		{name: "PUBLISH_TIMEOUT", value: "5"},
		{name: "PUBLISHER_CHANNELS", value: "0"},
		{name: "PUBLISH_PIPELINE", value: "0"},
		{name: "PUBLISH_PIPELINE", value: "2"}, // below the 4 channels
		{name: "PUBLISH_MAX_BATCH", value: "0"},
		{name: "PUBLISH_MAX_BATCH", value: "many"},
		{name: "PUBLISH_MAX_BATCH_BYTES", value: "512"},
		{name: "READ_TIMEOUT", value: "2m"},
		{name: "HEALTH_TIMEOUT", value: "x"},
		{name: "DRAIN_DELAY", value: "-1s"},
		{name: "NODE_ID", value: "0"},
		{name: "NODE_ID", value: "-1"},
		{name: "NODE_ID", value: "node-1"},
		{name: "PREFETCH", value: "0", consumer: true},
		{name: "PREFETCH", value: "65536", consumer: true},
		{name: "BATCH_SIZE", value: "lots", consumer: true},
		{name: "BATCH_SIZE", value: "257", consumer: true}, // over the default prefetch
		{name: "BATCH_SIZE", value: "10", consumer: true, alsoSet: []string{"KVFLEET_PREFETCH", "5"}},
		{name: "PREFETCH_BYTES", value: "1048576", consumer: true}, // below a 1 MiB value and its key
		{name: "PREFETCH_BYTES", value: "lots", consumer: true},
		{name: "BATCH_WAIT", value: "-1ms", consumer: true},
		{name: "DRAIN_TIMEOUT", value: "forever", consumer: true},
		{name: "RETRY_MAX", value: "1ms", consumer: true},
		{name: "MIGRATE", value: "maybe", consumer: true},
		{name: "MIGRATE", value: "yes", consumer: true},
		{name: "TOMBSTONE_RETENTION", value: "1s", consumer: true},
		{name: "PURGE_INTERVAL", value: "1", consumer: true},
	}
	apiOnly := map[string]bool{"HTTP_ADDR": true, "MAX_BODY_BYTES": true, "MAX_IN_FLIGHT_BYTES": true, "PUBLISH_TIMEOUT": true, "PUBLISHER_CHANNELS": true,
		"PUBLISH_PIPELINE": true, "PUBLISH_MAX_BATCH": true, "PUBLISH_MAX_BATCH_BYTES": true,
		"READ_TIMEOUT": true, "HEALTH_TIMEOUT": true, "DRAIN_DELAY": true, "NODE_ID": true}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			name := config.Prefix + tt.name
			load := map[string]func(func(string) string) error{
				"api":      func(g func(string) string) error { _, err := config.LoadAPI(g); return err },
				"consumer": func(g func(string) string) error { _, err := config.LoadConsumer(g); return err },
			}
			if tt.consumer {
				delete(load, "api")
			}
			if apiOnly[tt.name] {
				delete(load, "consumer")
			}
			for binary, fn := range load {
				err := fn(with(append([]string{name, tt.value}, tt.alsoSet...)...))
				if err == nil {
					t.Fatalf("%s accepted %s=%q", binary, name, tt.value)
				}
				if !strings.Contains(err.Error(), name) {
					t.Errorf("%s: error %q does not name %s", binary, err, name)
				}
				for _, secret := range []string{dbPassword, amqpPassword1, amqpPassword2, redisPassword} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("%s: error %q reveals a password", binary, err)
					}
				}
			}
		})
	}
}

func TestAllErrorsTogether(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"KVFLEET_LOG_LEVEL":       "loud",
		"KVFLEET_REDIS_TIMEOUT":   "1",
		"KVFLEET_DELIVERY_LIMIT":  "0",
		"KVFLEET_HTTP_ADDR":       "nowhere",
		"KVFLEET_PREFETCH":        "x", // consumer only
		"KVFLEET_DATABASE_URL":    "",
		"KVFLEET_REDIS_PASSWORD":  "",
		"KVFLEET_AMQP_URLS":       "",
		"KVFLEET_SOMETHING_ELSE":  "ignored",
		"KVFLEET_MAX_VALUE_BYTES": "1048576",
	}
	common := []string{"KVFLEET_LOG_LEVEL", "KVFLEET_REDIS_TIMEOUT", "KVFLEET_DELIVERY_LIMIT",
		"KVFLEET_DATABASE_URL", "KVFLEET_REDIS_PASSWORD", "KVFLEET_AMQP_URLS"}
	_, err := config.LoadAPI(getenv(env))
	checkNames(t, "api", err, append(common, "KVFLEET_HTTP_ADDR"), "KVFLEET_PREFETCH")
	_, err = config.LoadConsumer(getenv(env))
	checkNames(t, "consumer", err, append(common, "KVFLEET_PREFETCH"), "KVFLEET_HTTP_ADDR")
}

func checkNames(t *testing.T, binary string, err error, want []string, notWant string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", binary)
	}
	for _, name := range want {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error does not name %s:\n%v", binary, name, err)
		}
	}
	if strings.Contains(err.Error(), notWant) {
		t.Errorf("%s: error names %s, which it does not read:\n%v", binary, notWant, err)
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(want) {
		t.Errorf("%s: want %d separate errors, got:\n%v", binary, len(want), err)
	}
}

func TestRedisAddrDisablesSentinel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		env           []string
		wantAddr      string
		wantSentinels []string
	}{
		{"default is sentinel", nil, "", []string{"redis-sentinel-1:26379", "redis-sentinel-2:26379", "redis-sentinel-3:26379"}},
		{"addr only", []string{"KVFLEET_REDIS_ADDR", "redis:6379"}, "redis:6379", nil},
		{"addr wins over sentinels", []string{"KVFLEET_REDIS_ADDR", "redis:6379", "KVFLEET_REDIS_SENTINEL_ADDRS", "s1:26379"}, "redis:6379", nil},
		{"explicit sentinels", []string{"KVFLEET_REDIS_SENTINEL_ADDRS", "s1:26379,s2:26379"}, "", []string{"s1:26379", "s2:26379"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.LoadAPI(with(tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if c.Redis.Addr != tt.wantAddr || !slices.Equal(c.Redis.SentinelAddrs, tt.wantSentinels) {
				t.Errorf("Addr %q, SentinelAddrs %q; want %q, %q", c.Redis.Addr, c.Redis.SentinelAddrs, tt.wantAddr, tt.wantSentinels)
			}
		})
	}
}

func TestBatchSizeAgainstPrefetch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefetch, batch string
		ok              bool
	}{
		{"100", "100", true},
		{"100", "99", true},
		{"100", "101", false},
		{"", "256", true},
		{"", "257", false},
		{"1", "1", true},
	}
	for _, tt := range tests {
		_, err := config.LoadConsumer(with("KVFLEET_PREFETCH", tt.prefetch, "KVFLEET_BATCH_SIZE", tt.batch))
		switch {
		case tt.ok && err != nil:
			t.Errorf("prefetch %q, batch %q: %v", tt.prefetch, tt.batch, err)
		case !tt.ok && (err == nil || !strings.Contains(err.Error(), "KVFLEET_BATCH_SIZE")):
			t.Errorf("prefetch %q, batch %q: error %v, want one naming KVFLEET_BATCH_SIZE", tt.prefetch, tt.batch, err)
		}
	}
}

func TestLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	// Passwords with characters that URLs escape, so that neither form
	// may appear.
	const dbSpecial = "p@ss:w/rd%"
	tests := []struct {
		name    string
		env     []string
		secrets []string
		visible []string
	}{
		{
			name:    "defaults",
			secrets: []string{redisPassword, dbPassword, amqpPassword1, amqpPassword2},
			visible: []string{"haproxy:5432", "rabbitmq-1:5672", "rabbitmq-2:5672", `"redis_password":"<set>"`, `"redis_sentinel_password":"<unset>"`},
		},
		{
			name:    "sentinel password",
			env:     []string{"KVFLEET_REDIS_SENTINEL_PASSWORD", sentinelPassword},
			secrets: []string{redisPassword, sentinelPassword, dbPassword},
			visible: []string{`"redis_sentinel_password":"<set>"`},
		},
		{
			name:    "escaped characters in the database password",
			env:     []string{"KVFLEET_DATABASE_URL", "postgres://kv:p%40ss%3Aw%2Frd%25@haproxy:5432/kv"},
			secrets: []string{dbSpecial, "p%40ss%3Aw%2Frd%25", "p%40ss"},
			visible: []string{"haproxy:5432"},
		},
		{
			// libpq and pgx take the password from the query string too.
			name:    "database password in the query string",
			env:     []string{"KVFLEET_DATABASE_URL", "postgres://kv@haproxy:5432/kv?sslmode=disable&password=" + dbPassword},
			secrets: []string{dbPassword},
			visible: []string{"haproxy:5432"},
		},
		{
			name:    "key passphrase in the database query string",
			env:     []string{"KVFLEET_DATABASE_URL", "postgres://kv@haproxy:5432/kv?sslmode=verify-full&sslpassword=" + dbPassword},
			secrets: []string{dbPassword},
			visible: []string{"haproxy:5432"},
		},
		{
			name:    "single amqp URL",
			env:     []string{"KVFLEET_AMQP_URLS", "amqps://kv:" + amqpPassword1 + "@mq.example:5671/vhost"},
			secrets: []string{amqpPassword1},
			visible: []string{"mq.example:5671"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api, err := config.LoadAPI(with(tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			consumer, err := config.LoadConsumer(with(tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			for name, value := range map[string]any{"api": api, "consumer": consumer, "common": api.Common, "api pointer": &api} {
				var buf bytes.Buffer
				slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", value)
				out := buf.String()
				for _, secret := range tt.secrets {
					if strings.Contains(out, secret) {
						t.Errorf("%s: log output reveals %q:\n%s", name, secret, out)
					}
				}
				for _, want := range tt.visible {
					if !strings.Contains(out, want) {
						t.Errorf("%s: log output lacks %q:\n%s", name, want, out)
					}
				}
			}
		})
	}
}

func TestHealthcheckURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		env       map[string]string
		variable  string
		def, path string
		want      string
		wantErr   bool
	}{
		{name: "default", variable: "HTTP_ADDR", def: ":8000", path: "/healthz", want: "http://127.0.0.1:8000/healthz"},
		{name: "set with host", env: map[string]string{"KVFLEET_HTTP_ADDR": "0.0.0.0:8080"}, variable: "HTTP_ADDR", def: ":8000", path: "/readyz", want: "http://127.0.0.1:8080/readyz"},
		{name: "IPv6 host", env: map[string]string{"KVFLEET_OPS_ADDR": "[::]:9200"}, variable: "OPS_ADDR", def: ":9100", path: "/healthz", want: "http://127.0.0.1:9200/healthz"},
		{name: "needs no secrets", env: map[string]string{"KVFLEET_REDIS_PASSWORD": "", "KVFLEET_LOG_LEVEL": "bogus"}, variable: "OPS_ADDR", def: ":9100", path: "/healthz", want: "http://127.0.0.1:9100/healthz"},
		{name: "no port", env: map[string]string{"KVFLEET_HTTP_ADDR": "localhost"}, variable: "HTTP_ADDR", def: ":8000", path: "/healthz", wantErr: true},
		{name: "bad port", env: map[string]string{"KVFLEET_HTTP_ADDR": ":eighty"}, variable: "HTTP_ADDR", def: ":8000", path: "/healthz", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var asked []string
			env := maps.Clone(tt.env)
			got, err := config.HealthcheckURL(func(name string) string {
				asked = append(asked, name)
				return env[name]
			}, tt.variable, tt.def, tt.path)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), config.Prefix+tt.variable) {
					t.Errorf("error %v, want one naming %s", err, config.Prefix+tt.variable)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("HealthcheckURL = %q, %v; want %q", got, err, tt.want)
			}
			for _, name := range asked {
				if name != config.Prefix+tt.variable {
					t.Errorf("HealthcheckURL read %s; it should read only %s", name, config.Prefix+tt.variable)
				}
			}
		})
	}
}

func TestVariablesListsWhatTheLoadersRead(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		list []string
		want []string
		not  []string
	}{
		"api":      {config.APIVariables(), []string{"KVFLEET_REDIS_PASSWORD", "KVFLEET_DATABASE_URL", "KVFLEET_AMQP_URLS", "KVFLEET_HTTP_ADDR", "KVFLEET_MAX_IN_FLIGHT", "KVFLEET_NODE_ID"}, []string{"KVFLEET_BATCH_SIZE"}},
		"consumer": {config.ConsumerVariables(), []string{"KVFLEET_REDIS_PASSWORD", "KVFLEET_BATCH_SIZE", "KVFLEET_REPAIR_INTERVAL", "KVFLEET_MAX_CLOCK_SKEW"}, []string{"KVFLEET_HTTP_ADDR"}},
	} {
		for _, v := range tc.want {
			if !slices.Contains(tc.list, v) {
				t.Errorf("%s: %s missing from %v", name, v, tc.list)
			}
		}
		for _, v := range tc.not {
			if slices.Contains(tc.list, v) {
				t.Errorf("%s: lists %s, which it does not read", name, v)
			}
		}
		for _, v := range tc.list {
			if !strings.HasPrefix(v, config.Prefix) {
				t.Errorf("%s: %s lacks the prefix", name, v)
			}
		}
	}
}
