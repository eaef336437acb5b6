package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/kvtest"
	"github.com/kvfleet/kvfleet/internal/store"
	"github.com/kvfleet/kvfleet/internal/testserver"
	"github.com/kvfleet/kvfleet/internal/version"
)

func openStore(t *testing.T, url string) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool, err := store.OpenPool(t.Context(), store.PoolConfig{URL: url, MaxConns: 4, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return store.New(pool, store.Options{QueryTimeout: 5 * time.Second}, prometheus.NewRegistry()), pool
}

// TestPostgres runs the store against a real PostgreSQL 15 server.
func TestPostgres(t *testing.T) {
	pg := testserver.MustPostgres(t)
	ctx := t.Context()
	s, pool := openStore(t, pg.URL)

	t.Run("migrations run concurrently and repeatedly", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() { errs <- s.Migrate(ctx, 30*time.Second, nil) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Migrate: %v", err)
			}
		}
		if err := s.Migrate(ctx, 30*time.Second, nil); err != nil {
			t.Fatalf("repeated Migrate: %v", err)
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM kvfleet_schema_migrations`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("migration ledger has %d rows (err %v), want 2 (one per migration)", n, err)
		}
	})

	t.Run("repair log contract", func(t *testing.T) {
		kvtest.RunRepairLogContract(t, func(t *testing.T) (kvtest.RepairLog, func(string)) {
			if _, err := pool.Exec(ctx, `TRUNCATE kv_items, kv_cache_repairs`); err != nil {
				t.Fatal(err)
			}
			return s, func(key string) {
				if _, err := pool.Exec(ctx, `DELETE FROM kv_items WHERE key = $1`, []byte(key)); err != nil {
					t.Fatal(err)
				}
			}
		})
	})

	t.Run("contract", func(t *testing.T) {
		kvtest.RunStoreContract(t, func(t *testing.T) kvtest.Store {
			if _, err := pool.Exec(ctx, `TRUNCATE kv_items`); err != nil {
				t.Fatal(err)
			}
			return s
		})
	})

	t.Run("batches sharing keys in opposite orders do not deadlock", func(t *testing.T) {
		// Two consumers' batches over the same keys, one in ascending and
		// one in descending order, over and over: applied in the order
		// given, each would lock a row the other holds, and PostgreSQL
		// would abort one with a deadlock (40P01).
		keys := make([]string, 200)
		for i := range keys {
			keys[i] = fmt.Sprintf("dl-%03d", i)
		}
		batch := func(round int, reverse bool, node uint64) []kv.Item {
			items := make([]kv.Item, len(keys))
			for i, k := range keys {
				items[i] = kv.Item{Key: k, Value: "v", Version: version.Version{HLC: uint64(round + 1), Node: node}}
			}
			if reverse {
				slices.Reverse(items)
			}
			return items
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for side, reverse := range []bool{false, true} {
			wg.Go(func() {
				for round := range 40 {
					if _, err := s.Apply(ctx, batch(round, reverse, uint64(side+1))); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent Apply: %v", err)
		}
	})

	t.Run("purge removes only old tombstones", func(t *testing.T) {
		if _, err := pool.Exec(ctx, `TRUNCATE kv_items`); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		old := version.Floor(now.Add(-48 * time.Hour))
		recent := version.Floor(now.Add(-time.Hour))
		items := []kv.Item{
			{Key: "old-dead", Version: old, Deleted: true},
			{Key: "recent-dead", Version: recent, Deleted: true},
			{Key: "old-alive", Value: "v", Version: old},
		}
		for i := range 5 {
			items = append(items, kv.Item{Key: "bulk-" + string(rune('a'+i)), Version: old, Deleted: true})
		}
		if _, err := s.Apply(ctx, items); err != nil {
			t.Fatal(err)
		}
		cutoff := version.Floor(now.Add(-24 * time.Hour))
		var total int64
		for {
			n, err := s.PurgeTombstones(ctx, cutoff, 2)
			if err != nil {
				t.Fatal(err)
			}
			total += n
			if n < 2 {
				break
			}
		}
		if total != 6 {
			t.Fatalf("purged %d tombstones, want 6", total)
		}
		for key, wantErr := range map[string]error{"old-dead": kv.ErrNotFound, "recent-dead": nil, "old-alive": nil} {
			if _, err := s.Get(ctx, key); !errors.Is(err, wantErr) {
				t.Errorf("Get(%q) after purge: %v, want %v", key, err, wantErr)
			}
		}
	})

	t.Run("errors while the server is down are retried and the pool recovers", func(t *testing.T) {
		if err := pg.Stop(); err != nil {
			t.Fatal(err)
		}
		_, err := s.Apply(ctx, []kv.Item{{Key: "during-outage", Value: "v", Version: kvtest.V(1)}})
		if err == nil {
			t.Fatal("Apply succeeded with the database stopped")
		}
		if store.RowError(err) {
			t.Fatalf("outage error %v is blamed on the row; the consumer would dead-letter good writes", err)
		}
		if err := pg.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// The store does not retry (its caller does): the first statement
		// may still meet a connection the restart broke, but the pool must
		// replace it without a restart of the process.
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := s.Apply(ctx, []kv.Item{{Key: "after-outage", Value: "v", Version: kvtest.V(1)}})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Apply after restart: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping after restart: %v", err)
		}
	})

	t.Run("only errors of the data are row errors", func(t *testing.T) {
		for _, tc := range []struct {
			stmt string
			row  bool
		}{
			{`SELECT 1/0`, true}, // 22012 division by zero: a data exception
			{`SELECT 'x'::int`, true},
			{`INSERT INTO kv_items (key, value, version) VALUES (NULL, '', '')`, true}, // 23502
			{`SELECT * FROM no_such_table`, false},                                     // the schema, not the row
		} {
			_, err := pool.Exec(ctx, tc.stmt)
			if err == nil {
				t.Fatalf("%s succeeded", tc.stmt)
			}
			if got := store.RowError(err); got != tc.row {
				t.Errorf("RowError(%v) = %v, want %v", err, got, tc.row)
			}
		}
		if store.RowError(context.Canceled) || store.RowError(context.DeadlineExceeded) {
			t.Fatal("a cancelled or timed-out statement classified as a row error")
		}
	})
}
