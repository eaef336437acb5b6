package localserver

import (
	"context"
	"errors"
	"path/filepath"

	"golang.org/x/sync/errgroup"
)

// Servers is one of each server kvfleet needs.
type Servers struct {
	Redis    *RedisSet
	Postgres *Postgres
	RabbitMQ *RabbitMQ
}

// StartAll starts a RedisSet, PostgreSQL and RabbitMQ at the same time
// (RabbitMQ alone takes seconds), each in a directory of its own under dir,
// and waits until all are ready. The first failure cancels the other starts
// and stops what did start.
func StartAll(ctx context.Context, dir string) (*Servers, error) {
	s := &Servers{}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		s.Redis, err = StartRedis(gctx, filepath.Join(dir, "redis"))
		return err
	})
	g.Go(func() (err error) {
		s.Postgres, err = StartPostgres(gctx, filepath.Join(dir, "postgres"))
		return err
	})
	g.Go(func() (err error) {
		s.RabbitMQ, err = StartRabbitMQ(gctx, filepath.Join(dir, "rabbitmq"))
		return err
	})
	if err := g.Wait(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops every server that started. It may be called more than once.
func (s *Servers) Close() error {
	var errs []error
	if s.RabbitMQ != nil {
		errs = append(errs, s.RabbitMQ.Close())
	}
	if s.Postgres != nil {
		errs = append(errs, s.Postgres.Close())
	}
	if s.Redis != nil {
		errs = append(errs, s.Redis.Close())
	}
	return errors.Join(errs...)
}
