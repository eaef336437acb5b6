package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered SQL file.
type migration struct {
	id   int
	name string
	sql  string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	out := make([]migration, 0, len(names))
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		id, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number: %w", base, err)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{id: id, name: base, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// Migrate brings the database schema up to date, retrying the whole set with backoff
// for up to wait while it fails: in a fleet the database (or its user) may
// still be coming up, and two processes creating the same table at once can
// make one of them fail even with IF NOT EXISTS (PostgreSQL reports a
// duplicate catalog row), which the next attempt finds done. onRetry, if
// set, hears each failure before the pause.
//
// Every statement in a migration is idempotent, so several processes may
// migrate at the same time, and a process killed half-way leaves nothing
// that a rerun cannot finish. It avoids advisory locks, which CockroachDB
// does not honour.
func (s *Store) Migrate(ctx context.Context, wait time.Duration, onRetry func(error)) error {
	pause := &backoff.ExponentialBackOff{
		InitialInterval:     100 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         5 * time.Second,
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, migrateOnce(ctx, s.pool) },
		backoff.WithBackOff(pause),
		backoff.WithMaxElapsedTime(wait),
		backoff.WithNotify(func(err error, _ time.Duration) {
			if onRetry != nil {
				onRetry(err)
			}
		}))
	if err != nil {
		return fmt.Errorf("store: schema not migrated within %s: %w", wait, err)
	}
	return nil
}

func migrateOnce(ctx context.Context, pool *pgxpool.Pool) error {
	migrations, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("store: load migrations: %w", err)
	}
	const ledger = `CREATE TABLE IF NOT EXISTS kvfleet_schema_migrations (
		id INT NOT NULL PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`
	if _, err := pool.Exec(ctx, ledger); err != nil {
		return fmt.Errorf("store: create migration ledger: %w", err)
	}
	for _, m := range migrations {
		var done bool
		err := pool.QueryRow(ctx,
			`SELECT EXISTS (SELECT 1 FROM kvfleet_schema_migrations WHERE id = $1)`, m.id).Scan(&done)
		if err != nil {
			return fmt.Errorf("store: read migration ledger: %w", err)
		}
		if done {
			continue
		}
		for _, stmt := range statements(m.sql) {
			if _, err := pool.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("store: migration %s: %w", m.name, err)
			}
		}
		_, err = pool.Exec(ctx,
			`INSERT INTO kvfleet_schema_migrations (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`,
			m.id, m.name)
		if err != nil {
			return fmt.Errorf("store: record migration %s: %w", m.name, err)
		}
	}
	return nil
}

// statements splits a migration file on semicolons at line ends, dropping
// comments; the migrations are plain DDL with no semicolons inside strings.
func statements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}
