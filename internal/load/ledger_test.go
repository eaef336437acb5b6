package load

import (
	"strings"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/version"
)

var t0 = time.Unix(1_700_000_000, 0)

// ver is the version a replica's clock gives at t0+ms.
func ver(ms int64) string {
	return version.Version{HLC: uint64(t0.UnixMilli()+ms) << 16, Node: 7}.String()
}

// at is the time t0+s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func ackedPut(key, value string, sent float64, v string) Outcome {
	return Outcome{Request: Request{Op: OpPut, Key: key, Value: value, Intended: at(sent)}, Sent: at(sent), Status: 202, Version: v}
}

func ackedDel(key string, sent float64, v string) Outcome {
	return Outcome{Request: Request{Op: OpDelete, Key: key, Intended: at(sent)}, Sent: at(sent), Status: 202, Version: v}
}

// failed is a write answered with status (0: a transport error).
func failed(op Op, key, value string, sent float64, status int) Outcome {
	o := Outcome{Request: Request{Op: op, Key: key, Value: value, Intended: at(sent)}, Sent: at(sent), Status: status}
	switch status {
	case 0:
		o.Failure = FailTimeout
	case 503:
		o.Code = "queue_unavailable"
	case 400:
		o.Code = "invalid_json"
	}
	return o
}

func notSent(key, value string, sent float64) Outcome {
	return Outcome{Request: Request{Op: OpPut, Key: key, Value: value, Intended: at(sent)}, Failure: FailClientLimit}
}

func found(value, v string) Observation {
	return Observation{Found: true, Value: value, Version: v, Source: "redis"}
}

func TestLedgerCheck(t *testing.T) {
	cases := []struct {
		name     string
		writes   []Outcome
		obs      Observation
		ok, lost bool
		why      string // a substring of Verdict.Why
	}{
		{
			name:   "the highest acknowledged put",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), ackedPut("k", "b", 2, ver(2000))},
			obs:    found("b", ver(2000)), ok: true, why: WhyAcknowledged,
		},
		{
			name: "highest by version, not by order of the answers",
			writes: []Outcome{
				ackedPut("k", "b", 2, ver(2000)),
				ackedPut("k", "a", 1.9, ver(1900)),
			},
			obs: found("b", ver(2000)), ok: true, why: WhyAcknowledged,
		},
		{
			name:   "an older acknowledged put: the newer one was lost",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), ackedPut("k", "b", 2, ver(2000))},
			obs:    found("a", ver(1000)), lost: true, why: "older than the highest acknowledged",
		},
		{
			name:   "an acknowledged delete",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), ackedDel("k", 2, ver(2000))},
			obs:    Observation{}, ok: true, why: WhyDeleted,
		},
		{
			name:   "a put older than the acknowledged delete came back",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), ackedDel("k", 2, ver(2000))},
			obs:    found("a", ver(1000)), lost: true, why: "older than the highest acknowledged DELETE",
		},
		{
			name:   "not found after an acknowledged put",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000))},
			obs:    Observation{}, lost: true, why: "not found",
		},
		{
			name:   "not found: a later delete answered 503 may have been applied",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), failed(OpDelete, "k", "", 1.5, 503)},
			obs:    Observation{}, ok: true, why: WhyNewerDelete,
		},
		{
			name:   "not found: a delete that timed out just before the put may have a higher version",
			writes: []Outcome{failed(OpDelete, "k", "", 0.5, 0), ackedPut("k", "a", 1, ver(1000))},
			obs:    Observation{}, ok: true, why: WhyNewerDelete,
		},
		{
			name:   "not found: a delete sent long before the put cannot be newer",
			writes: []Outcome{failed(OpDelete, "k", "", 1, 503), ackedPut("k", "a", 5, ver(5000))},
			obs:    Observation{}, lost: true, why: "not found",
		},
		{
			name:   "not found: a refused delete explains nothing",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), failed(OpDelete, "k", "", 2, 400)},
			obs:    Observation{}, lost: true, why: "not found",
		},
		{
			name:   "a newer put answered 503 was applied after all",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), failed(OpPut, "k", "c", 2, 503)},
			obs:    found("c", ver(2000)), ok: true, why: WhyNewerPut,
		},
		{
			name:   "a newer put that timed out was applied after all",
			writes: []Outcome{ackedDel("k", 1, ver(1000)), failed(OpPut, "k", "c", 2, 0)},
			obs:    found("c", ver(2000)), ok: true, why: WhyNewerPut,
		},
		{
			name:   "a higher version from a put sent long before the acknowledged one",
			writes: []Outcome{failed(OpPut, "k", "c", 1, 503), ackedPut("k", "a", 5, ver(5000))},
			obs:    found("c", ver(6000)), lost: true, why: "cannot be newer",
		},
		{
			name:   "an unacknowledged put older than the acknowledged one",
			writes: []Outcome{failed(OpPut, "k", "c", 1, 503), ackedPut("k", "a", 5, ver(5000))},
			obs:    found("c", ver(1000)), lost: true, why: "older than the highest acknowledged",
		},
		{
			name:   "the acknowledged version with another value",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), failed(OpPut, "k", "c", 1.1, 503)},
			obs:    found("c", ver(1000)), lost: true, why: "another value",
		},
		{
			name:   "an acknowledged put applied twice (a replay with a newer version)",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), ackedPut("k", "b", 2, ver(2000))},
			obs:    found("a", ver(3000)), lost: true, why: "applied twice",
		},
		{
			name:   "a value no put sent",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000))},
			obs:    found("zzz", ver(9000)), lost: true, why: "no put to this key sent",
		},
		{
			name:   "the value of a put sent to another key",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000)), ackedPut("other", "b", 2, ver(2000))},
			obs:    found("b", ver(2000)), lost: true, why: "no put to this key sent",
		},
		{
			name:   "the value of a refused put",
			writes: []Outcome{failed(OpPut, "k", "r", 1, 400)},
			obs:    found("r", ver(1000)), why: "refused or never sent",
		},
		{
			name:   "the value of a put never sent",
			writes: []Outcome{notSent("k", "n", 1)},
			obs:    found("n", ver(1000)), why: "refused or never sent",
		},
		{
			name:   "nothing acknowledged: an attempted put was applied",
			writes: []Outcome{failed(OpPut, "k", "c", 1, 503), failed(OpPut, "k", "d", 2, 0)},
			obs:    found("c", ver(1000)), ok: true, why: WhyNothingAcked,
		},
		{
			name:   "nothing acknowledged: not found",
			writes: []Outcome{failed(OpPut, "k", "c", 1, 503)},
			obs:    Observation{}, ok: true, why: WhyNothingAckedEmpty,
		},
		{
			name:   "nothing acknowledged: a foreign value is corruption, not a loss",
			writes: []Outcome{failed(OpPut, "k", "c", 1, 503)},
			obs:    found("zzz", ver(1000)), why: "no put to this key sent",
		},
		{
			name:   "an unreadable version",
			writes: []Outcome{ackedPut("k", "a", 1, ver(1000))},
			obs:    found("a", "v1"), lost: true, why: "unreadable version",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLedger()
			if err := l.Add(tc.writes); err != nil {
				t.Fatal(err)
			}
			v := l.Check("k", tc.obs)
			if v.OK != tc.ok || v.Lost != tc.lost || !strings.Contains(v.Why, tc.why) {
				t.Fatalf("Check = %+v, want ok=%v lost=%v why containing %q", v, tc.ok, tc.lost, tc.why)
			}
		})
	}
}

func TestLedgerCheckUnknownKey(t *testing.T) {
	l := NewLedger()
	if v := l.Check("never", Observation{}); !v.OK {
		t.Fatalf("a key never written and not found: %+v", v)
	}
	if v := l.Check("never", found("x", ver(1))); v.OK || v.Lost {
		t.Fatalf("a key never written holding a value: %+v, want a failure that is not a loss", v)
	}
}

func TestLedgerRefusesDuplicateValues(t *testing.T) {
	l := NewLedger()
	err := l.Add([]Outcome{ackedPut("k", "same", 1, ver(1000)), failed(OpPut, "k", "same", 2, 503)})
	if err == nil {
		t.Fatal("Add accepted the same value twice for one key; the check would be unsound")
	}
}

func TestLedgerRefusesBadAcknowledgement(t *testing.T) {
	l := NewLedger()
	if err := l.Add([]Outcome{ackedPut("k", "a", 1, "not-a-version")}); err == nil {
		t.Fatal("Add accepted an acknowledgement with an unreadable version")
	}
}

func TestLedgerStats(t *testing.T) {
	l := NewLedger()
	err := l.Add([]Outcome{
		ackedPut("a", "1", 1, ver(1000)),
		ackedDel("a", 2, ver(2000)),
		failed(OpPut, "b", "2", 1, 503),
		failed(OpPut, "b", "3", 1, 400),
		notSent("c", "4", 1),
		ackedPut("c", "5", 2, ver(2000)),
		{Request: Request{Op: OpGet, Key: "d"}, Status: 200},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := l.Stats()
	want := LedgerStats{Keys: 3, Attempted: 6, Acknowledged: 3, AckedPuts: 2, AckedDeletes: 1, Ambiguous: 1, NotApplied: 2, KeysEndingDeleted: 1}
	if got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
	if keys := l.Keys(); strings.Join(keys, ",") != "a,b,c" {
		t.Fatalf("Keys = %v, want a,b,c (reads are not writes)", keys)
	}
}
