// Package systemtest runs the whole write and read path in one process
// against real servers: the HTTP API with its publisher, two consumers, a
// Redis master with a replica and three Sentinels, PostgreSQL and RabbitMQ.
// Its tests stop and kill those servers to show that no acknowledged write
// is lost and that the end state is exactly the highest version of every
// key. It has no code outside its tests.
package systemtest
