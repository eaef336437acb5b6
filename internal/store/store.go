// Package store keeps the system of record in PostgreSQL or CockroachDB
// (through HAProxy in the fleet), with SQL that runs unchanged on both.
//
// Every row carries the version of the write that produced it, and every
// write is a conditional upsert that only moves a row to the same or a
// higher version. That single rule gives the consumer its guarantees:
// applying a write twice changes nothing, applying writes out of order ends
// in the newest one, and a delete is a tombstone that an older put cannot
// overwrite.
package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/version"
)

// PoolConfig sizes and bounds the connection pool.
type PoolConfig struct {
	URL            string
	MaxConns       int32
	ConnectTimeout time.Duration
	// MaxConnIdleTime must stay below HAProxy's idle timeouts, or the pool
	// hands out connections the proxy has already cut.
	MaxConnIdleTime time.Duration
}

// OpenPool connects a pgx pool. It does not wait for the database: the pool
// dials lazily, so a process can start while the database is still coming up.
func OpenPool(ctx context.Context, cfg PoolConfig) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("store: database URL cannot be parsed")
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.ConnectTimeout > 0 {
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	}
	if cfg.MaxConnIdleTime > 0 {
		pc.MaxConnIdleTime = cfg.MaxConnIdleTime
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("store: open pool: %w", err)
	}
	return pool, nil
}

// Options tune the store.
type Options struct {
	// QueryTimeout bounds each statement.
	QueryTimeout time.Duration
}

// Store implements kv.Store and the consumer's write side. It runs each
// statement once: the caller decides whether to try again (the consumer
// retries every error that RowError does not blame on the data; a reader
// answers 503 and lets its client retry).
type Store struct {
	pool *pgxpool.Pool
	opts Options

	duration *prometheus.HistogramVec
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool, opts Options, reg prometheus.Registerer) *Store {
	f := promauto.With(reg)
	return &Store{
		pool: pool,
		opts: opts,
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kvfleet_db_query_duration_seconds",
			Help:    "Latency of database statements by operation and result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op", "result"}),
	}
}

// Get implements kv.Store.
func (s *Store) Get(ctx context.Context, key string) (kv.Item, error) {
	var (
		value, ver []byte
		deleted    bool
	)
	err := s.timed(ctx, "get", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx,
			`SELECT value, version, deleted FROM kv_items WHERE key = $1`, []byte(key),
		).Scan(&value, &ver, &deleted)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return kv.Item{}, kv.ErrNotFound
	}
	if err != nil {
		return kv.Item{}, fmt.Errorf("store: get: %w", err)
	}
	v, err := version.FromBytes(ver)
	if err != nil {
		return kv.Item{}, fmt.Errorf("store: get: stored version: %w", err)
	}
	return kv.Item{Key: key, Value: string(value), Version: v, Deleted: deleted}, nil
}

// Apply writes each item unless its row already holds a higher version, in
// one statement, and reports for each item whether it was written. An item
// whose version equals the stored one is written again (the same bytes), so
// a redelivered write still counts as applied and its cache update is
// repeated. Keys must be distinct (see kv.Newest). Retrying an Apply whose
// outcome is unknown (a lost connection during the commit) is harmless.
func (s *Store) Apply(ctx context.Context, items []kv.Item) ([]bool, error) {
	if len(items) == 0 {
		return nil, nil
	}
	query, args := upsertStatement(items)
	written := make(map[string]bool, len(items))
	err := s.timed(ctx, "apply", func(ctx context.Context) error {
		clear(written)
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		var key []byte
		_, err = pgx.ForEachRow(rows, []any{&key}, func() error {
			written[string(key)] = true
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: apply %d items: %w", len(items), err)
	}
	applied := make([]bool, len(items))
	for i, item := range items {
		applied[i] = written[item.Key]
	}
	return applied, nil
}

// upsertStatement builds one multi-row conditional upsert. A multi-row
// VALUES list is used rather than unnest() of arrays because it means the
// same thing to PostgreSQL and CockroachDB.
func upsertStatement(items []kv.Item) (string, []any) {
	var b strings.Builder
	b.Grow(160 + len(items)*24)
	b.WriteString(`INSERT INTO kv_items (key, value, version, deleted) VALUES `)
	writeValues(&b, len(items), 4)
	b.WriteString(` ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, deleted = excluded.deleted` +
		` WHERE kv_items.version <= excluded.version RETURNING key`)
	args := make([]any, 0, 4*len(items))
	for _, item := range inKeyOrder(items) {
		args = append(args, []byte(item.Key), []byte(item.Value), item.Version.Bytes(), item.Deleted)
	}
	return b.String(), args
}

// inKeyOrder returns items sorted by key (bytewise, as the key column
// sorts). A multi-row upsert locks its rows in the order of its VALUES
// list: two consumers' batches that share keys in opposite orders would
// each hold a row the other waits for, and the database would abort one
// of them (a deadlock, 40P01), again and again under a steady load. In one
// order, the second simply waits for the first.
func inKeyOrder(items []kv.Item) []kv.Item {
	return slices.SortedFunc(slices.Values(items), func(a, b kv.Item) int { return strings.Compare(a.Key, b.Key) })
}

// writeValues writes rows placeholder tuples of cols parameters each:
// ($1,$2),($3,$4)…
func writeValues(b *strings.Builder, rows, cols int) {
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range cols {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(i*cols + j + 1))
		}
		b.WriteByte(')')
	}
}

// MarkStale records that the cache may hold an older entry than items: the
// consumer committed them but could not update Redis. A key already
// recorded at a higher version keeps it.
func (s *Store) MarkStale(ctx context.Context, items []kv.Item) error {
	if len(items) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO kv_cache_repairs (key, version) VALUES `)
	writeValues(&b, len(items), 2)
	b.WriteString(` ON CONFLICT (key) DO UPDATE SET version = excluded.version WHERE kv_cache_repairs.version < excluded.version`)
	args := make([]any, 0, 2*len(items))
	for _, item := range inKeyOrder(items) {
		args = append(args, []byte(item.Key), item.Version.Bytes())
	}
	if err := s.exec(ctx, "mark_stale", b.String(), args); err != nil {
		return fmt.Errorf("store: mark %d keys stale: %w", len(items), err)
	}
	return nil
}

// Stale returns up to limit keys recorded by MarkStale, each as its
// current row, which is what the cache should hold. A key whose row has
// since been purged (an old tombstone) comes back as a tombstone at the
// recorded version.
func (s *Store) Stale(ctx context.Context, limit int) ([]kv.Item, error) {
	var out []kv.Item
	err := s.timed(ctx, "stale", func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, `SELECT r.key, r.version, i.value, i.version, i.deleted
			FROM kv_cache_repairs r LEFT JOIN kv_items i ON i.key = r.key LIMIT $1`, limit)
		if err != nil {
			return err
		}
		var (
			key, marked, value, ver []byte
			deleted                 *bool
		)
		_, err = pgx.ForEachRow(rows, []any{&key, &marked, &value, &ver, &deleted}, func() error {
			item := kv.Item{Key: string(key), Value: string(value), Deleted: deleted == nil || *deleted}
			if ver == nil {
				ver = marked
			}
			v, err := version.FromBytes(ver)
			if err != nil {
				return fmt.Errorf("stored version: %w", err)
			}
			item.Version = v
			out = append(out, item)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: stale keys: %w", err)
	}
	return out, nil
}

// Unmark forgets the records of items' keys at or below items' versions: a
// key marked again at a newer version since Stale read it stays recorded.
func (s *Store) Unmark(ctx context.Context, items []kv.Item) error {
	if len(items) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(`DELETE FROM kv_cache_repairs WHERE `)
	args := make([]any, 0, 2*len(items))
	for i, item := range items {
		if i > 0 {
			b.WriteString(" OR ")
		}
		fmt.Fprintf(&b, "(key = $%d AND version <= $%d)", 2*i+1, 2*i+2)
		args = append(args, []byte(item.Key), item.Version.Bytes())
	}
	if err := s.exec(ctx, "unmark", b.String(), args); err != nil {
		return fmt.Errorf("store: unmark %d keys: %w", len(items), err)
	}
	return nil
}

// exec runs one statement that returns no rows.
func (s *Store) exec(ctx context.Context, op, sql string, args []any) error {
	return s.timed(ctx, op, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, sql, args...)
		return err
	})
}

// PurgeTombstones deletes up to limit tombstones older than before and
// returns how many it deleted. Rows that a newer put has revived meanwhile
// are left alone by the repeated condition in the outer statement.
func (s *Store) PurgeTombstones(ctx context.Context, before version.Version, limit int) (int64, error) {
	var n int64
	err := s.timed(ctx, "purge", func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM kv_items WHERE deleted AND version < $1 AND key IN (
			SELECT key FROM kv_items WHERE deleted AND version < $1 LIMIT $2)`, before.Bytes(), limit)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: purge tombstones: %w", err)
	}
	return n, nil
}

// Ping checks that a connection to the database works.
func (s *Store) Ping(ctx context.Context) error {
	return s.timed(ctx, "ping", func(ctx context.Context) error {
		if err := s.pool.Ping(ctx); err != nil {
			return fmt.Errorf("store: ping: %w", err)
		}
		return nil
	})
}

// timed runs one statement under the query timeout and records its latency.
func (s *Store) timed(ctx context.Context, op string, f func(context.Context) error) error {
	if s.opts.QueryTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.QueryTimeout)
		defer cancel()
	}
	start := time.Now()
	err := f(ctx)
	result := "ok"
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		result = "error"
	}
	s.duration.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
	return err
}
