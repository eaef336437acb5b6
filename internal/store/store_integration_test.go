package store_test

import (
	"context"
	"errors"
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
	return store.New(pool, store.Options{QueryTimeout: 5 * time.Second, Attempts: 3, Backoff: 20 * time.Millisecond}, prometheus.NewRegistry()), pool
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
			wg.Go(func() { errs <- store.Migrate(ctx, pool) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Migrate: %v", err)
			}
		}
		if err := store.Migrate(ctx, pool); err != nil {
			t.Fatalf("repeated Migrate: %v", err)
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM kvfleet_schema_migrations`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("migration ledger has %d rows (err %v), want 1", n, err)
		}
	})

	t.Run("contract", func(t *testing.T) {
		kvtest.RunStoreContract(t, func(t *testing.T) kvtest.Store {
			if _, err := pool.Exec(ctx, `TRUNCATE kv_items`); err != nil {
				t.Fatal(err)
			}
			return s
		})
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

	t.Run("errors while the server is down are transient and the pool recovers", func(t *testing.T) {
		if err := pg.Stop(); err != nil {
			t.Fatal(err)
		}
		_, err := s.Apply(ctx, []kv.Item{{Key: "during-outage", Value: "v", Version: kvtest.V(1)}})
		if err == nil {
			t.Fatal("Apply succeeded with the database stopped")
		}
		if !store.Transient(err) {
			t.Fatalf("outage error %v is not transient; the consumer would dead-letter good writes", err)
		}
		if err := pg.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, []kv.Item{{Key: "after-outage", Value: "v", Version: kvtest.V(1)}}); err != nil {
			t.Fatalf("Apply after restart: %v", err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping after restart: %v", err)
		}
	})

	t.Run("permanent errors are not transient", func(t *testing.T) {
		_, err := pool.Exec(ctx, `SELECT * FROM no_such_table`)
		if err == nil || store.Transient(err) {
			t.Fatalf("missing table error %v classified transient", err)
		}
		if store.Transient(context.Canceled) {
			t.Fatal("context.Canceled classified transient")
		}
	})
}
