package load

import (
	"fmt"
	"slices"
	"time"

	"github.com/kvfleet/kvfleet/internal/version"
)

// ClockSkew is how far apart in time two writes to a key may be sent and
// still get versions in the other order: versions come from the API
// replicas' clocks (here one machine's), so the order of versions follows
// the order of sending except within this margin. The check uses it to
// decide whether a write that was not acknowledged can be the reason a key
// holds something newer than its highest acknowledged write.
const ClockSkew = time.Second

// attempt is one write of the ledger.
type attempt struct {
	op         Op
	value      string
	sent       time.Time // when it was sent (or due, if it was not)
	acked      bool
	version    version.Version // valid when acked
	notApplied bool            // refused or never sent: cannot have had any effect
}

// history is every write attempted on one key.
type history struct {
	attempts []*attempt
	byValue  map[string]*attempt // puts by value (values are unique)
	highest  *attempt            // the acknowledged write with the highest version
}

// Ledger records every write attempted in a run, by key, and checks a
// key's final state against them. Values must be unique across the writes
// added to one ledger (Plan.Tag). Not safe for concurrent use.
type Ledger struct {
	keys map[string]*history
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{keys: map[string]*history{}} }

// Add records the writes among outcomes; reads are ignored. It fails on a
// value seen before (the check would be unsound) or an acknowledgement with
// an unreadable version.
func (l *Ledger) Add(outcomes []Outcome) error {
	for _, o := range outcomes {
		if !o.Op.IsWrite() {
			continue
		}
		h := l.keys[o.Key]
		if h == nil {
			h = &history{byValue: map[string]*attempt{}}
			l.keys[o.Key] = h
		}
		sent := o.Sent
		if sent.IsZero() {
			sent = o.Intended
		}
		a := &attempt{op: o.Op, value: o.Value, sent: sent, notApplied: o.NotApplied()}
		if o.Acknowledged() {
			v, err := version.Parse(o.Version)
			if err != nil {
				return fmt.Errorf("load: ledger: acknowledgement of %q: %w", o.Key, err)
			}
			a.acked, a.version = true, v
			if h.highest == nil || h.highest.version.Less(v) {
				h.highest = a
			}
		}
		if o.Op == OpPut {
			if _, dup := h.byValue[o.Value]; dup {
				return fmt.Errorf("load: ledger: value %q written twice to %q; values must be unique", o.Value, o.Key)
			}
			h.byValue[o.Value] = a
		}
		h.attempts = append(h.attempts, a)
	}
	return nil
}

// Keys returns every key written, sorted.
func (l *Ledger) Keys() []string {
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// LedgerStats counts a ledger's writes.
type LedgerStats struct {
	Keys         int `json:"keys"`
	Attempted    int `json:"attempted"`
	Acknowledged int `json:"acknowledged"`
	AckedPuts    int `json:"acknowledged_puts"`
	AckedDeletes int `json:"acknowledged_deletes"`
	// Ambiguous writes were not acknowledged but may have been applied.
	Ambiguous  int `json:"ambiguous"`
	NotApplied int `json:"not_applied"`
	// KeysEndingDeleted have an acknowledged delete as their highest write.
	KeysEndingDeleted int `json:"keys_ending_deleted"`
}

// Stats counts the ledger's writes.
func (l *Ledger) Stats() LedgerStats {
	s := LedgerStats{Keys: len(l.keys)}
	for _, h := range l.keys {
		for _, a := range h.attempts {
			s.Attempted++
			switch {
			case a.acked && a.op == OpPut:
				s.Acknowledged++
				s.AckedPuts++
			case a.acked:
				s.Acknowledged++
				s.AckedDeletes++
			case a.notApplied:
				s.NotApplied++
			default:
				s.Ambiguous++
			}
		}
		if h.highest != nil && h.highest.op == OpDelete {
			s.KeysEndingDeleted++
		}
	}
	return s
}

// Observation is a key's state as read back.
type Observation struct {
	Found   bool
	Value   string
	Version string
	Source  string // where the API read it ("redis", "database")
}

// Verdict is the check of one key.
type Verdict struct {
	Key string `json:"key"`
	OK  bool   `json:"ok"`
	// Lost: the key does not reflect its highest acknowledged write.
	Lost bool `json:"lost,omitempty"`
	// Unread: the key could not be read back, so nothing was decided.
	Unread bool `json:"unread,omitempty"`
	// Why says what the state was explained by, or what is wrong with it.
	Why string `json:"why"`
}

// Why values of the verdicts that pass.
const (
	WhyAcknowledged      = "holds its highest acknowledged write"
	WhyDeleted           = "not found after an acknowledged delete"
	WhyNewerPut          = "holds a newer write that was not acknowledged"
	WhyNewerDelete       = "not found after a newer delete that was not acknowledged"
	WhyNothingAcked      = "no acknowledged write; holds one of its attempted writes"
	WhyNothingAckedEmpty = "no acknowledged write; not found"
)

// Check decides whether a key's final state is one the writes of the
// ledger allow:
//   - with no acknowledged write: not found, or a value one of its puts sent
//     (a write that was not acknowledged may have been applied);
//   - else the state of the acknowledged write with the highest version: its
//     value at exactly its version, or not found for a delete;
//   - or a newer write that was not acknowledged (it may have been applied
//     after all), sent no earlier than ClockSkew before that write: a value
//     one of those puts sent, at a higher version, or not found when one of
//     them was a delete.
//
// A value that no put to the key sent, or that a put sent but was refused,
// or that an acknowledged put sent but at another version (the write was
// applied twice), never passes. A key of no write at all passes only when
// not found.
func (l *Ledger) Check(key string, obs Observation) Verdict {
	v := Verdict{Key: key}
	h := l.keys[key]
	if h == nil {
		h = &history{}
	}
	hi := h.highest
	fail := func(format string, args ...any) Verdict {
		v.Why = fmt.Sprintf(format, args...)
		v.Lost = hi != nil
		return v
	}
	pass := func(why string) Verdict {
		v.OK, v.Why = true, why
		return v
	}
	if !obs.Found {
		switch {
		case hi == nil:
			return pass(WhyNothingAckedEmpty)
		case hi.op == OpDelete:
			return pass(WhyDeleted)
		case h.laterUnacked(hi, OpDelete):
			return pass(WhyNewerDelete)
		}
		return fail("not found, but a put acknowledged at %s was the highest write", hi.version)
	}
	got, err := version.Parse(obs.Version)
	if err != nil {
		return fail("holds an unreadable version %q", obs.Version)
	}
	a := h.byValue[obs.Value]
	switch {
	case a == nil:
		return fail("holds a value no put to this key sent (version %s, from %s)", got, obs.Source)
	case a.notApplied:
		return fail("holds the value of a put that was refused or never sent (version %s)", got)
	case a.acked && a.version != got:
		return fail("holds the value of a put acknowledged at %s, but at version %s: the write was applied twice", a.version, got)
	case hi == nil:
		return pass(WhyNothingAcked)
	}
	switch c := got.Compare(hi.version); {
	case c < 0:
		return fail("holds version %s (from %s), older than the highest acknowledged %s %s", got, obs.Source, hi.op, hi.version)
	case c == 0:
		// got == hi.version and a.acked implies a == hi; an unacknowledged
		// put cannot share a version with an acknowledged write.
		if a != hi {
			return fail("holds version %s with another value than the write acknowledged at it", got)
		}
		return pass(WhyAcknowledged)
	}
	if a.sent.Before(hi.sent.Add(-ClockSkew)) {
		return fail("holds version %s of a put sent %v before the highest acknowledged write, which cannot be newer", got, hi.sent.Sub(a.sent).Round(time.Millisecond))
	}
	return pass(WhyNewerPut)
}

// laterUnacked reports whether a write of kind op that was not acknowledged
// but may have been applied was sent no earlier than ClockSkew before a.
func (h *history) laterUnacked(a *attempt, op Op) bool {
	for _, b := range h.attempts {
		if b.op == op && !b.acked && !b.notApplied && !b.sent.Before(a.sent.Add(-ClockSkew)) {
			return true
		}
	}
	return false
}
