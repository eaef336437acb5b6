package load

import (
	"context"
	"sync"
	"testing"
	"time"
)

// state answers reads from a table that the test changes: key → answers in
// turn (the last one repeats).
type state struct {
	mu      sync.Mutex
	answers map[string][]Observation
	fail    map[string]int // key → reads that fail with 503 first
}

func (s *state) Do(_ context.Context, r Request) Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := Outcome{Request: r}
	if s.fail[r.Key] > 0 {
		s.fail[r.Key]--
		o.Status, o.Code = 503, "database_unavailable"
		return o
	}
	list := s.answers[r.Key]
	if len(list) == 0 {
		o.Status, o.Code = 404, "not_found"
		return o
	}
	a := list[0]
	if len(list) > 1 {
		s.answers[r.Key] = list[1:]
	}
	if !a.Found {
		o.Status, o.Code = 404, "not_found"
		return o
	}
	o.Status, o.ReadValue, o.Version, o.Source = 200, a.Value, a.Version, a.Source
	return o
}

func ledgerOf(t *testing.T, outcomes ...Outcome) *Ledger {
	t.Helper()
	l := NewLedger()
	if err := l.Add(outcomes); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestConvergeWaitsForTheLastWrite(t *testing.T) {
	l := ledgerOf(t,
		ackedPut("a", "a1", 1, ver(1000)), ackedPut("a", "a2", 2, ver(2000)),
		ackedPut("b", "b1", 1, ver(1000)), ackedDel("b", 2, ver(2000)),
		failed(OpPut, "c", "c1", 1, 503),
	)
	s := &state{
		answers: map[string][]Observation{
			// a is applied on the third read; b's delete on the second.
			"a": {found("a1", ver(1000)), found("a1", ver(1000)), found("a2", ver(2000))},
			"b": {found("b1", ver(1000)), {}},
			// c's unacknowledged put was applied.
			"c": {found("c1", ver(1000))},
		},
		fail: map[string]int{"a": 1},
	}
	c := Converge(t.Context(), s, l, 10*time.Second, 2)
	if !c.Converged || c.Lost+c.Corrupt+c.Unverified+c.Flapped != 0 || len(c.Problems) != 0 {
		t.Fatalf("Converge = %+v, want converged without problems", c)
	}
	if c.Keys != 3 || c.Passed[WhyAcknowledged] != 1 || c.Passed[WhyDeleted] != 1 || c.Passed[WhyNothingAcked] != 1 {
		t.Fatalf("Converge = %+v, want a, b, c passed for their reasons", c)
	}
}

func TestConvergeReportsLostAndUnreadKeys(t *testing.T) {
	l := ledgerOf(t,
		ackedPut("lost", "l1", 1, ver(1000)), ackedPut("lost", "l2", 2, ver(2000)),
		ackedPut("down", "d1", 1, ver(1000)),
		failed(OpPut, "foreign", "f1", 1, 503),
		ackedPut("fine", "x", 1, ver(1000)),
	)
	s := &state{
		answers: map[string][]Observation{
			"lost":    {found("l1", ver(1000))},
			"foreign": {found("zz", ver(1000))},
			"fine":    {found("x", ver(1000))},
		},
		fail: map[string]int{"down": 1 << 30},
	}
	c := Converge(t.Context(), s, l, 600*time.Millisecond, 4)
	if c.Converged || c.Lost != 1 || c.Unverified != 1 || c.Corrupt != 1 || len(c.Problems) != 3 {
		t.Fatalf("Converge = %+v, want not converged with 1 lost, 1 unverified, 1 corrupt", c)
	}
	if c.Passed[WhyAcknowledged] != 1 {
		t.Fatalf("the key that was fine: %+v", c.Passed)
	}
}

func TestConvergeReadsEveryKeyAgainBeforeItSaysSo(t *testing.T) {
	l := ledgerOf(t, ackedPut("k", "v1", 1, ver(1000)))
	// Right, then stale (a cache that flaps), then right for good.
	s := &state{answers: map[string][]Observation{"k": {
		found("v1", ver(1000)), {}, found("v1", ver(1000)),
	}}}
	c := Converge(t.Context(), s, l, 10*time.Second, 1)
	if !c.Converged || c.Flapped != 1 {
		t.Fatalf("Converge = %+v, want converged after one key flapped", c)
	}
}
