package queue

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// A broker that stops reading its socket must not hold a write, and so a
// publish, past the write timeout: amqp091 checks a publish's context only
// before it writes.
func TestWriteDeadlineConnEndsAStuckWrite(t *testing.T) {
	client, server := net.Pipe() // synchronous: a write blocks until read
	defer server.Close()
	conn := writeDeadlineConn{Conn: client, timeout: 50 * time.Millisecond}
	defer conn.Close()

	done := make(chan error, 1)
	go func() {
		_, err := conn.Write([]byte("a frame nobody reads"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("stuck write returned %v, want a deadline error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the write is still blocked; the deadline was not applied")
	}
}

// A write that the peer reads succeeds, however many come one after
// another: each gets a fresh deadline.
func TestWriteDeadlineConnRenewsTheDeadline(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	conn := writeDeadlineConn{Conn: client, timeout: time.Second}
	defer conn.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := server.Read(buf); err != nil {
				return
			}
		}
	}()
	for i := range 5 {
		if _, err := conn.Write([]byte("frame")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		time.Sleep(300 * time.Millisecond) // together longer than one timeout
	}
}
