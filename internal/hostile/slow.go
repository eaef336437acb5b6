package hostile

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"
)

// slowResult is what the slow clients saw.
type slowResult struct {
	Connections int `json:"connections"`
	// ClosedByServer counts the connections the fleet closed (or answered)
	// before the client gave up; the rest were still held open.
	ClosedByServer int `json:"closed_by_server"`
	// LongestHeld is the longest the fleet kept a slow connection.
	LongestHeld  string `json:"longest_held"`
	DialFailures int    `json:"dial_failures"`
}

// slowClients opens n connections to base and, on each, sends the start of
// a request and then one more piece every interval until the fleet closes
// the connection or hold has passed: headers that never end, or (body)
// a PUT whose declared 1 MiB body comes in 1 KiB pieces.
func slowClients(ctx context.Context, base string, n int, body bool, interval, hold time.Duration) slowResult {
	u, _ := url.Parse(base)
	res := slowResult{Connections: n}
	var mu sync.Mutex
	var longest time.Duration
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			conn, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", u.Host)
			if err != nil {
				mu.Lock()
				res.DialFailures++
				mu.Unlock()
				return
			}
			defer conn.Close()
			start := time.Now()
			first := fmt.Sprintf("GET /?key=slow-%d HTTP/1.1\r\nHost: %s\r\n", i, u.Host)
			piece := []byte("X-Slow: a\r\n")
			if body {
				first = fmt.Sprintf("PUT / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"key_name\":\"slow-%d\",\"key_value\":\"",
					u.Host, 1<<20, i)
				piece = make([]byte, 1024)
				for j := range piece {
					piece[j] = 's'
				}
			}
			closed := make(chan struct{})
			go func() { // the fleet closing (or answering) ends the read
				buf := make([]byte, 512)
				_, _ = conn.Read(buf)
				close(closed)
			}()
			if _, err := conn.Write([]byte(first)); err != nil {
				return
			}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			deadline := time.After(hold)
			for {
				select {
				case <-closed:
					held := time.Since(start)
					mu.Lock()
					res.ClosedByServer++
					longest = max(longest, held)
					mu.Unlock()
					return
				case <-deadline:
					mu.Lock()
					longest = max(longest, time.Since(start))
					mu.Unlock()
					_ = conn.Close()
					<-closed
					return
				case <-ctx.Done():
					_ = conn.Close()
					<-closed
					return
				case <-tick.C:
					_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
					_, _ = conn.Write(piece)
				}
			}
		})
	}
	wg.Wait()
	res.LongestHeld = longest.Round(100 * time.Millisecond).String()
	return res
}
