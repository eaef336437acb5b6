package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kvfleet/kvfleet/internal/consumer"
	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/kvtest"
	"github.com/kvfleet/kvfleet/internal/queue"
)

// Times of the fake clocks: writes were accepted at acceptedAt and the
// consumer's clock reads appliedAt, so every lag observation is 1.5 s.
var (
	acceptedAt = time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	appliedAt  = acceptedAt.Add(1500 * time.Millisecond)
)

var testLimits = kv.Limits{MaxKeyBytes: 16, MaxValueBytes: 64}

// settlement is one call a consumer made on a delivery.
type settlement struct {
	kind     string // "ack", "nack" or "reject"
	tag      uint64
	multiple bool
	requeue  bool
}

func (s settlement) String() string {
	return fmt.Sprintf("%s(%d, multiple=%v, requeue=%v)", s.kind, s.tag, s.multiple, s.requeue)
}

// recorder is a queue.Settler that records every settlement and reports
// it on events.
type recorder struct {
	mu     sync.Mutex
	calls  []settlement
	events chan settlement
}

func newRecorder() *recorder { return &recorder{events: make(chan settlement, 1024)} }

func (r *recorder) record(s settlement) error {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
	r.events <- s
	return nil
}

func (r *recorder) Ack(tag uint64, multiple bool) error {
	return r.record(settlement{kind: "ack", tag: tag, multiple: multiple})
}

func (r *recorder) Nack(tag uint64, multiple, requeue bool) error {
	return r.record(settlement{kind: "nack", tag: tag, multiple: multiple, requeue: requeue})
}

func (r *recorder) Reject(tag uint64, requeue bool) error {
	return r.record(settlement{kind: "reject", tag: tag, requeue: requeue})
}

func (r *recorder) settlements() []settlement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) of(kind string) []settlement {
	var out []settlement
	for _, s := range r.settlements() {
		if s.kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// message is a delivery body: one write or several, as the publisher
// groups them, or raw bytes for a poison message.
type message struct {
	writes []kv.Write
	raw    []byte
}

func put(key, value string, hlc uint64) message {
	return message{writes: []kv.Write{{Op: kv.OpPut, Key: key, Value: value, Version: kvtest.V(hlc), AcceptedAt: acceptedAt}}}
}

func del(key string, hlc uint64) message {
	return message{writes: []kv.Write{{Op: kv.OpDelete, Key: key, Version: kvtest.V(hlc), AcceptedAt: acceptedAt}}}
}

// group is one message carrying the writes of msgs, in order.
func group(msgs ...message) message {
	var g message
	for _, m := range msgs {
		g.writes = append(g.writes, m.writes...)
	}
	return g
}

func poison(body string) message { return message{raw: []byte(body)} }

// Poison bodies: nothing a consumer could ever apply.
var (
	garbage     = poison("garbage")
	unknownOp   = poison(`{"op":"upsert","key":"k","version":"00000000000000000000000000000009"}`)
	oversize    = poison(`{"op":"put","key":"` + strings.Repeat("k", 17) + `","value":"v","version":"00000000000000000000000000000009"}`)
	zeroVersion = poison(`{"op":"delete","key":"k","version":"00000000000000000000000000000000"}`)
)

// harness runs a Consumer over in-memory stand-ins.
type harness struct {
	store    *kvtest.MemoryStore
	cache    *kvtest.MemoryCache
	reg      *prometheus.Registry
	acks     *recorder
	consumer *consumer.Consumer

	deliveries chan queue.Message
	nextTag    uint64
	cancel     context.CancelFunc
	done       chan error
}

type harnessOption func(*consumer.Config, *consumer.Store)

// withBatchWait sets how long a partial batch waits; by default it waits an
// hour so that batches are cut by size alone and tests are deterministic.
func withBatchWait(d time.Duration) harnessOption {
	return func(c *consumer.Config, _ *consumer.Store) { c.BatchWait = d }
}

// withDrainTimeout sets how long the batch in hand may take after shutdown
// begins.
func withDrainTimeout(d time.Duration) harnessOption {
	return func(c *consumer.Config, _ *consumer.Store) { c.DrainTimeout = d }
}

// withBatchBytes bounds the bodies in one batch.
func withBatchBytes(n int) harnessOption {
	return func(c *consumer.Config, _ *consumer.Store) { c.BatchBytes = n }
}

// withStore wraps the memory store.
func withStore(wrap func(*kvtest.MemoryStore) consumer.Store) harnessOption {
	return func(_ *consumer.Config, s *consumer.Store) { *s = wrap((*s).(*kvtest.MemoryStore)) }
}

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	h := &harness{
		store:      kvtest.NewMemoryStore(),
		cache:      kvtest.NewMemoryCache(),
		reg:        prometheus.NewRegistry(),
		acks:       newRecorder(),
		deliveries: make(chan queue.Message, 1024),
		done:       make(chan error, 1),
	}
	cfg := consumer.Config{
		BatchSize:    4,
		BatchWait:    time.Hour,
		DrainTimeout: 20 * time.Millisecond,
		RetryMin:     time.Millisecond,
		RetryMax:     5 * time.Millisecond,
		RowError:     func(err error) bool { return errors.Is(err, errRefused) },
		Now:          func() time.Time { return appliedAt },
		Logger:       slog.New(slog.DiscardHandler),
	}
	var store consumer.Store = h.store
	for _, o := range opts {
		o(&cfg, &store)
	}
	h.consumer = consumer.New(cfg, store, h.cache, h.reg)
	return h
}

// send queues deliveries with the next delivery tags.
func (h *harness) send(t *testing.T, msgs ...message) {
	t.Helper()
	for _, m := range msgs {
		h.nextTag++
		body := m.raw
		id := "poison"
		if body == nil {
			var err error
			if body, err = queue.EncodeBatch(m.writes); err != nil {
				t.Fatal(err)
			}
			id = m.writes[0].Version.String()
		}
		h.deliveries <- queue.NewMessage(body, id, h.nextTag, h.acks, testLimits)
	}
}

func (h *harness) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.consumer.Handle(ctx, h.deliveries) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
			t.Errorf("Handle did not return after the test")
		}
	})
}

// wait waits for Handle to return and checks that it returned nil.
func (h *harness) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Handle returned %v, want nil", err)
		}
		h.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatalf("Handle did not return; settlements so far %v", h.acks.settlements())
	}
}

// run sends msgs, closes the channel and waits for Handle to finish.
func (h *harness) run(t *testing.T, msgs ...message) {
	t.Helper()
	h.send(t, msgs...)
	close(h.deliveries)
	h.start(t)
	h.wait(t)
}

// metric finds a metric by name and, if result is set, by its result label.
func (h *harness) metric(t *testing.T, name, result string) *dto.Metric {
	t.Helper()
	return h.metricWith(t, name, "result", result)
}

// metricWith finds a metric by name and, if value is set, by label.
func (h *harness) metricWith(t *testing.T, name, label, value string) *dto.Metric {
	t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if value == "" {
				return m
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m
				}
			}
		}
	}
	return nil
}

// writes reads kvfleet_consumer_writes_total{result}.
func (h *harness) writes(t *testing.T, result string) float64 {
	t.Helper()
	return h.metric(t, "kvfleet_consumer_writes_total", result).GetCounter().GetValue()
}

// messages reads kvfleet_consumer_messages_total{result}.
func (h *harness) messages(t *testing.T, result string) float64 {
	t.Helper()
	return h.metric(t, "kvfleet_consumer_messages_total", result).GetCounter().GetValue()
}

// lag returns the observation count and sum of the apply-lag histogram.
func (h *harness) lag(t *testing.T) (uint64, float64) {
	t.Helper()
	m := h.metric(t, "kvfleet_write_apply_lag_seconds", "")
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// eventually polls cond until it holds; the bound only keeps a broken
// consumer from hanging the test run.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// newestState is the state a log of writes must leave: the highest
// version of each key.
func newestState(msgs []message) map[string]kv.Item {
	want := make(map[string]kv.Item)
	for _, m := range msgs {
		for _, w := range m.writes {
			if cur, ok := want[w.Key]; !ok || cur.Version.Less(w.Version) {
				want[w.Key] = w.Item()
			}
		}
	}
	return want
}

// checkState checks that the store and the cache both hold want.
func (h *harness) checkState(t *testing.T, want map[string]kv.Item) {
	t.Helper()
	if got := h.store.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("store = %v\nwant    %v", got, want)
	}
	for key, item := range want {
		if got, ok := h.cache.Entry(key); !ok || got != item {
			t.Errorf("cache[%q] = %+v (present %v), want %+v", key, got, ok, item)
		}
	}
}

func TestBatchIsAppliedAndAckedOnce(t *testing.T) {
	h := newHarness(t)
	msgs := []message{put("a", "1", 10), put("b", "1", 11), put("a", "2", 12), del("c", 13)}
	h.run(t, msgs...)

	h.checkState(t, newestState(msgs))
	want := []settlement{{kind: "ack", tag: 4, multiple: true}}
	if got := h.acks.settlements(); !reflect.DeepEqual(got, want) {
		t.Errorf("settlements = %v, want %v", got, want)
	}
	if got := h.writes(t, "applied"); got != 3 {
		t.Errorf("applied = %v, want 3", got)
	}
	if got := h.writes(t, "superseded"); got != 1 {
		t.Errorf("superseded = %v, want 1", got)
	}
	if n, sum := h.lag(t); n != 3 || sum != 3*1.5 {
		t.Errorf("lag histogram has %d observations summing to %v, want 3 of 1.5 s", n, sum)
	}
}

func TestBatchesAreCutBySize(t *testing.T) {
	tests := []struct {
		name     string
		messages int
		wantAcks []uint64
	}{
		{"one partial batch", 3, []uint64{3}},
		{"one full batch", 4, []uint64{4}},
		{"full and partial", 6, []uint64{4, 6}},
		{"three full", 12, []uint64{4, 8, 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			var msgs []message
			for i := range tt.messages {
				msgs = append(msgs, put(fmt.Sprintf("k%d", i), "v", uint64(100+i)))
			}
			h.run(t, msgs...)
			var got []uint64
			for _, s := range h.acks.settlements() {
				if s.kind != "ack" || !s.multiple {
					t.Errorf("settlement %v, want only multiple acks", s)
				}
				got = append(got, s.tag)
			}
			if !slices.Equal(got, tt.wantAcks) {
				t.Errorf("acked tags %v, want %v", got, tt.wantAcks)
			}
			h.checkState(t, newestState(msgs))
			if n, _ := h.lag(t); n != uint64(tt.messages) {
				t.Errorf("lag observations = %d, want %d", n, tt.messages)
			}
		})
	}
}

func TestPartialBatchIsAppliedAfterBatchWait(t *testing.T) {
	h := newHarness(t, withBatchWait(time.Millisecond))
	h.start(t)
	// One message in a batch of four, and the channel stays open: only
	// BatchWait can end this batch. (A second message could land in a batch
	// of its own or not, depending on scheduling.)
	msgs := []message{put("a", "1", 1)}
	h.send(t, msgs...)
	var s settlement
	select {
	case s = <-h.acks.events:
	case <-time.After(30 * time.Second):
		t.Fatal("a partial batch was never applied")
	}
	if want := (settlement{kind: "ack", tag: 1, multiple: true}); s != want {
		t.Errorf("settlement %v, want %v", s, want)
	}
	h.checkState(t, newestState(msgs))
	close(h.deliveries)
	h.wait(t)
}

func TestShuffledDuplicatedLogEndsAtNewest(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			var log []message
			hlcs := r.Perm(500)
			for i := range 25 {
				key := fmt.Sprintf("k%d", r.Intn(4))
				hlc := uint64(1 + hlcs[i])
				m := put(key, fmt.Sprint("v", hlc), hlc)
				if r.Intn(3) == 0 {
					m = del(key, hlc)
				}
				log = append(log, m)
				// Redeliveries: the same write again, possibly much later.
				for r.Intn(3) == 0 {
					log = append(log, m)
				}
			}
			r.Shuffle(len(log), func(i, j int) { log[i], log[j] = log[j], log[i] })

			h := newHarness(t)
			h.run(t, log...)
			h.checkState(t, newestState(log))

			acks := h.acks.settlements()
			if want := (len(log) + 3) / 4; len(acks) != want {
				t.Errorf("%d settlements, want %d multiple acks: %v", len(acks), want, acks)
			}
			for i, s := range acks {
				want := settlement{kind: "ack", tag: uint64(min(4*(i+1), len(log))), multiple: true}
				if s != want {
					t.Errorf("settlement %d = %v, want %v", i, s, want)
				}
			}
			applied, superseded := h.writes(t, "applied"), h.writes(t, "superseded")
			if applied+superseded < float64(len(log)) {
				t.Errorf("applied %v + superseded %v < %d messages", applied, superseded, len(log))
			}
			if n, _ := h.lag(t); float64(n) != applied {
				t.Errorf("lag observations = %d, want one per applied write (%v)", n, applied)
			}
		})
	}
}

func TestDeleteStaysDeleted(t *testing.T) {
	tests := []struct {
		name string
		msgs []message
	}{
		{"older put redelivered in a later batch", []message{put("k", "old", 1), del("k", 2), put("x", "x", 3), put("y", "y", 4), put("k", "old", 1)}},
		{"older put redelivered in the same batch", []message{put("k", "old", 1), del("k", 2), put("k", "old", 1)}},
		{"delete arrives before the older put", []message{del("k", 2), put("k", "old", 1)}},
		{"delete and older put in separate batches", []message{del("k", 2), put("a", "a", 5), put("b", "b", 6), put("c", "c", 7), put("k", "old", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.run(t, tt.msgs...)
			tombstone := kv.Item{Key: "k", Version: kvtest.V(2), Deleted: true}
			if got := h.store.Snapshot()["k"]; got != tombstone {
				t.Errorf("store[k] = %+v, want %+v", got, tombstone)
			}
			if got, _ := h.cache.Entry("k"); got != tombstone {
				t.Errorf("cache[k] = %+v, want %+v", got, tombstone)
			}
			h.checkState(t, newestState(tt.msgs))
			if rejects := h.acks.of("reject"); len(rejects) != 0 {
				t.Errorf("rejected %v; a stale write is superseded, not poison", rejects)
			}
			if last := h.acks.of("ack"); len(last) == 0 || last[len(last)-1].tag != uint64(len(tt.msgs)) {
				t.Errorf("acks %v, want the last ack on tag %d", last, len(tt.msgs))
			}
		})
	}
}

func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	tests := []struct {
		name        string
		msgs        []message
		wantRejects []uint64
		// wantAck is the tag of the single multiple ack, 0 for none.
		wantAck uint64
	}{
		{"garbage in the middle", []message{put("a", "1", 1), garbage, put("b", "1", 2), put("c", "1", 3)}, []uint64{2}, 4},
		{"unknown op first", []message{unknownOp, put("a", "1", 1), put("b", "1", 2)}, []uint64{1}, 3},
		{"oversize key last", []message{put("a", "1", 1), put("b", "1", 2), oversize}, []uint64{3}, 2},
		{"two poison at the end", []message{put("a", "1", 1), put("b", "1", 2), garbage, zeroVersion}, []uint64{3, 4}, 2},
		{"only poison", []message{garbage, unknownOp, oversize}, []uint64{1, 2, 3}, 0},
		{"poison ends a partial batch", []message{del("a", 1), unknownOp}, []uint64{2}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.run(t, tt.msgs...)

			var rejects, acks []settlement
			for _, s := range h.acks.settlements() {
				switch s.kind {
				case "reject":
					rejects = append(rejects, s)
				case "ack":
					acks = append(acks, s)
				default:
					t.Errorf("unexpected %v", s)
				}
			}
			var rejected []uint64
			for _, s := range rejects {
				if s.requeue {
					t.Errorf("%v requeues a message that can never be applied", s)
				}
				rejected = append(rejected, s.tag)
			}
			if !slices.Equal(rejected, tt.wantRejects) {
				t.Errorf("rejected tags %v, want %v", rejected, tt.wantRejects)
			}
			for _, s := range acks {
				if slices.Contains(rejected, s.tag) {
					t.Errorf("%v acknowledges a rejected delivery", s)
				}
			}
			var wantAcks []settlement
			if tt.wantAck != 0 {
				wantAcks = []settlement{{kind: "ack", tag: tt.wantAck, multiple: true}}
			}
			if !reflect.DeepEqual(acks, wantAcks) {
				t.Errorf("acks %v, want %v", acks, wantAcks)
			}
			if got := h.messages(t, "dead_lettered"); got != float64(len(tt.wantRejects)) {
				t.Errorf("dead_lettered messages = %v, want %d", got, len(tt.wantRejects))
			}
			h.checkState(t, newestState(tt.msgs))
		})
	}
}

func TestOutageHoldsTheBatch(t *testing.T) {
	tests := []struct {
		name string
		down func(h *harness, err error)
		// wantStoredDuring: the store already holds the batch while it is held.
		wantStoredDuring bool
	}{
		{"store down", func(h *harness, err error) { h.store.SetErr(err) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			msgs := []message{put("a", "1", 1), put("b", "1", 2), del("a", 3), put("c", "1", 4), put("d", "1", 5), garbage}
			tt.down(h, kvtest.ErrDown)
			h.send(t, msgs...)
			h.start(t)

			eventually(t, "a retry", func() bool { return h.writes(t, "retried") > 0 })
			if got := h.acks.settlements(); len(got) != 0 {
				t.Fatalf("settled %v while the %s", got, tt.name)
			}
			stored := len(h.store.Snapshot()) > 0
			if stored != tt.wantStoredDuring {
				t.Errorf("store holds writes during the outage: %v, want %v", stored, tt.wantStoredDuring)
			}
			retried := h.writes(t, "retried")
			eventually(t, "more retries", func() bool { return h.writes(t, "retried") > retried })
			if got := h.acks.settlements(); len(got) != 0 {
				t.Fatalf("settled %v while the %s", got, tt.name)
			}

			tt.down(h, nil)
			close(h.deliveries)
			h.wait(t)

			h.checkState(t, newestState(msgs))
			want := []settlement{
				{kind: "ack", tag: 4, multiple: true},
				{kind: "reject", tag: 6},
				{kind: "ack", tag: 5, multiple: true},
			}
			if got := h.acks.settlements(); !reflect.DeepEqual(got, want) {
				t.Errorf("settlements = %v, want %v", got, want)
			}
			if got := h.writes(t, "applied"); got != 4 {
				t.Errorf("applied = %v, want 4 (each write once, however many retries)", got)
			}
			if n, _ := h.lag(t); n != 4 {
				t.Errorf("lag observations = %d, want 4", n)
			}
		})
	}
}

// errRefused is an error the consumer must not retry.
var errRefused = errors.New("store refuses this key")

// refusingStore refuses for good any batch that contains one key.
type refusingStore struct {
	*kvtest.MemoryStore
	key string
}

func (s refusingStore) Apply(ctx context.Context, items []kv.Item) ([]bool, error) {
	for _, item := range items {
		if item.Key == s.key {
			return nil, fmt.Errorf("apply %q: %w", item.Key, errRefused)
		}
	}
	return s.MemoryStore.Apply(ctx, items)
}

func TestPermanentStoreErrorDeadLettersOnlyThatKey(t *testing.T) {
	tests := []struct {
		name        string
		msgs        []message
		wantRejects []uint64
		wantAcks    []uint64
	}{
		{"bad key in the middle", []message{put("a", "1", 1), put("bad", "x", 2), put("b", "1", 3), del("c", 4)}, []uint64{2}, []uint64{4}},
		{"bad key last", []message{put("a", "1", 1), put("b", "1", 2), put("bad", "x", 3)}, []uint64{3}, []uint64{2}},
		{"bad key alone", []message{put("bad", "x", 1)}, []uint64{1}, nil},
		{"bad key in the second batch", []message{put("a", "1", 1), put("b", "1", 2), put("c", "1", 3), put("d", "1", 4), put("bad", "x", 5), put("e", "1", 6)}, []uint64{5}, []uint64{4, 6}},
		// Every message of the refused key is dead-lettered, including an
		// older one that the batch reduced away: it was never applied
		// either, and acknowledging it would drop it without a trace.
		{"bad key twice in one batch", []message{put("bad", "x", 1), put("a", "1", 2), put("bad", "y", 3), put("b", "1", 4)}, []uint64{1, 3}, []uint64{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withStore(func(s *kvtest.MemoryStore) consumer.Store { return refusingStore{s, "bad"} }))
			h.run(t, tt.msgs...)

			var rejected, acked []uint64
			for _, s := range h.acks.settlements() {
				switch {
				case s.kind == "reject" && !s.requeue:
					rejected = append(rejected, s.tag)
				case s.kind == "ack" && s.multiple:
					acked = append(acked, s.tag)
				default:
					t.Errorf("unexpected %v", s)
				}
			}
			slices.Sort(rejected)
			if !slices.Equal(rejected, tt.wantRejects) {
				t.Errorf("dead-lettered tags %v, want %v", rejected, tt.wantRejects)
			}
			if !slices.Equal(acked, tt.wantAcks) {
				t.Errorf("acked tags %v, want %v", acked, tt.wantAcks)
			}
			if got := h.writes(t, "dead_lettered"); got != float64(len(tt.wantRejects)) {
				t.Errorf("dead_lettered = %v, want %d", got, len(tt.wantRejects))
			}
			want := newestState(tt.msgs)
			delete(want, "bad")
			h.checkState(t, want)
			if _, ok := h.cache.Entry("bad"); ok {
				t.Errorf("the refused key was cached")
			}
			if got := h.writes(t, "retried"); got != 0 {
				t.Errorf("retried = %v, want 0: a permanent error is not retried", got)
			}
		})
	}
}

func TestShutdownWhileStoreIsDownLeavesBatchUnacked(t *testing.T) {
	h := newHarness(t)
	h.store.SetErr(kvtest.ErrDown)
	msgs := []message{put("a", "1", 1), put("b", "1", 2), put("c", "1", 3), put("d", "1", 4)}
	h.send(t, msgs...)
	h.start(t)
	eventually(t, "a retry", func() bool { return h.writes(t, "retried") > 0 })

	h.cancel()
	h.wait(t) // returns once the 20 ms drain timeout ends the retries

	if got := h.acks.settlements(); len(got) != 0 {
		t.Errorf("settled %v; a held batch must go back to the queue unacknowledged", got)
	}
	h.store.SetErr(nil)
	if got := h.store.Snapshot(); len(got) != 0 {
		t.Errorf("store = %v, want nothing applied", got)
	}
}

func TestShutdownFinishesTheBatchInHand(t *testing.T) {
	// Shutdown begins while the database is down; it comes back within
	// the drain timeout (an hour here, so timing cannot matter), and the
	// batch in hand is applied and acknowledged before Handle returns.
	h := newHarness(t, withDrainTimeout(time.Hour))
	h.store.SetErr(kvtest.ErrDown)
	msgs := []message{put("a", "1", 1), put("b", "1", 2), put("c", "1", 3), put("d", "1", 4)}
	h.send(t, msgs...)
	h.start(t)
	eventually(t, "a retry", func() bool { return h.writes(t, "retried") > 0 })
	h.cancel()
	retried := h.writes(t, "retried")
	eventually(t, "a retry after shutdown began", func() bool { return h.writes(t, "retried") > retried })
	h.store.SetErr(nil)
	h.wait(t)

	want := []settlement{{kind: "ack", tag: 4, multiple: true}}
	if got := h.acks.settlements(); !reflect.DeepEqual(got, want) {
		t.Errorf("settlements = %v, want %v", got, want)
	}
	h.checkState(t, newestState(msgs))
}

// heldStore is down for the keys that start with "held" and up for the rest.
type heldStore struct{ *kvtest.MemoryStore }

func (s heldStore) Apply(ctx context.Context, items []kv.Item) ([]bool, error) {
	for _, item := range items {
		if strings.HasPrefix(item.Key, "held") {
			return nil, kvtest.ErrDown
		}
	}
	return s.MemoryStore.Apply(ctx, items)
}

// After the drain timeout leaves a batch unacknowledged, Handle must not go
// on to apply further deliveries: their multiple ack would also acknowledge
// the held batch, which was never written, and the broker would drop it.
func TestHeldBatchIsNeverAcknowledgedAfterShutdown(t *testing.T) {
	for trial := range 20 {
		h := newHarness(t, withStore(func(s *kvtest.MemoryStore) consumer.Store { return heldStore{s} }))
		held := []message{put("held1", "1", 1), put("held2", "1", 2), put("held3", "1", 3), put("held4", "1", 4)}
		next := []message{put("n1", "1", 5), put("n2", "1", 6), put("n3", "1", 7), put("n4", "1", 8)}
		h.send(t, held...)
		h.send(t, next...) // already prefetched when shutdown begins
		h.start(t)
		eventually(t, "a retry", func() bool { return h.writes(t, "retried") > 0 })
		h.cancel()
		h.wait(t)

		for _, s := range h.acks.settlements() {
			if s.kind == "ack" {
				t.Fatalf("trial %d: %v after shutdown acknowledges the held, unapplied deliveries 1-4 (store %v)",
					trial, s, h.store.Snapshot())
			}
		}
	}
}

func TestClosedDeliveriesEndHandle(t *testing.T) {
	h := newHarness(t, withBatchWait(time.Millisecond))
	close(h.deliveries)
	h.start(t)
	h.wait(t)
	if got := h.acks.settlements(); len(got) != 0 {
		t.Errorf("settled %v with no deliveries", got)
	}
}

func TestCancelledIdleHandleReturns(t *testing.T) {
	h := newHarness(t)
	h.start(t)
	h.cancel()
	h.wait(t)
}

func TestSupersededByStoreIsNotApplied(t *testing.T) {
	h := newHarness(t)
	newer := kv.Item{Key: "k", Value: "newer", Version: kvtest.V(50)}
	if _, err := h.store.Apply(context.Background(), []kv.Item{newer}); err != nil {
		t.Fatal(err)
	}
	h.run(t, put("k", "older", 10), put("x", "1", 11))
	if got := h.store.Snapshot()["k"]; got != newer {
		t.Errorf("store[k] = %+v, want the newer %+v", got, newer)
	}
	if got, ok := h.cache.Entry("k"); ok && got != newer {
		t.Errorf("cache[k] = %+v, want nothing or %+v", got, newer)
	}
	if got := h.writes(t, "applied"); got != 1 {
		t.Errorf("applied = %v, want 1", got)
	}
	if got := h.writes(t, "superseded"); got != 1 {
		t.Errorf("superseded = %v, want 1", got)
	}
	if n, _ := h.lag(t); n != 1 {
		t.Errorf("lag observations = %d, want 1 (only the applied write)", n)
	}
	if got := h.acks.settlements(); !reflect.DeepEqual(got, []settlement{{kind: "ack", tag: 2, multiple: true}}) {
		t.Errorf("settlements = %v, want one multiple ack on tag 2", got)
	}
}

// failingStore fails every Apply with err until healed, counting attempts.
type failingStore struct {
	*kvtest.MemoryStore
	mu       sync.Mutex
	err      error
	attempts int
}

func (s *failingStore) Apply(ctx context.Context, items []kv.Item) ([]bool, error) {
	s.mu.Lock()
	s.attempts++
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.MemoryStore.Apply(ctx, items)
}

func (s *failingStore) heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = nil
}

func (s *failingStore) tries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Errors that belong to the database rather than to a row (a wrong
// password after a rotation, a missing table, a read-only database) must
// hold the batch, not dead-letter acknowledged writes.
func TestDatabaseErrorsThatLookPermanentAreRetried(t *testing.T) {
	for _, cause := range []string{"password authentication failed (28P01)", "relation kv_items does not exist (42P01)", "read-only transaction (25006)", "internal error (XX000)"} {
		t.Run(cause, func(t *testing.T) {
			fs := &failingStore{err: errors.New(cause)}
			h := newHarness(t, withStore(func(s *kvtest.MemoryStore) consumer.Store { fs.MemoryStore = s; return fs }))
			msgs := []message{put("a", "1", 1), put("b", "1", 2), del("a", 3), put("c", "1", 4)}
			h.send(t, msgs...)
			h.start(t)
			eventually(t, "several attempts", func() bool { return fs.tries() >= 3 })
			if got := h.acks.settlements(); len(got) != 0 {
				t.Fatalf("settled %v while the database refused every statement", got)
			}
			fs.heal()
			close(h.deliveries)
			h.wait(t)
			h.checkState(t, newestState(msgs))
			if got := h.acks.of("reject"); len(got) != 0 {
				t.Errorf("dead-lettered %v; a database error is not the write's fault", got)
			}
		})
	}
}

// A batch is cut before its bodies pass BatchBytes, so that large values
// do not make one statement too big to finish.
func TestBatchesAreCutByBytes(t *testing.T) {
	var msgs []message
	for i := range 6 {
		msgs = append(msgs, put(fmt.Sprintf("k%d", i), strings.Repeat("v", 40), uint64(i+1)))
	}
	body, err := queue.EncodeBatch(msgs[0].writes) // all six bodies have this size
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, withBatchBytes(2*len(body)+len(body)/2))
	h.run(t, msgs...)
	var acked []uint64
	for _, s := range h.acks.of("ack") {
		acked = append(acked, s.tag)
	}
	if want := []uint64{2, 4, 6}; !slices.Equal(acked, want) {
		t.Errorf("acked tags %v, want %v (two messages fit in a batch, three do not)", acked, want)
	}
	h.checkState(t, newestState(msgs))
}

// timingOutStore times out every statement with more than max rows, as a
// database does with a statement too big for its timeout.
type timingOutStore struct {
	*kvtest.MemoryStore
	max int
}

func (s timingOutStore) Apply(ctx context.Context, items []kv.Item) ([]bool, error) {
	if len(items) > s.max {
		return nil, fmt.Errorf("store: apply %d items: %w", len(items), context.DeadlineExceeded)
	}
	return s.MemoryStore.Apply(ctx, items)
}

// A batch whose statement keeps timing out is split until it fits, rather
// than retried forever and wedging every consumer in turn.
func TestBatchThatKeepsTimingOutIsSplit(t *testing.T) {
	h := newHarness(t, withStore(func(s *kvtest.MemoryStore) consumer.Store { return timingOutStore{s, 1} }))
	msgs := []message{put("a", "1", 1), put("b", "1", 2), put("c", "1", 3), put("d", "1", 4)}
	h.run(t, msgs...)
	h.checkState(t, newestState(msgs))
	if got := h.acks.settlements(); !reflect.DeepEqual(got, []settlement{{kind: "ack", tag: 4, multiple: true}}) {
		t.Errorf("settlements = %v, want one multiple ack on tag 4", got)
	}
	if got := h.writes(t, "applied"); got != 4 {
		t.Errorf("applied = %v, want 4", got)
	}
}

// A cache outage must not hold writes back from the database: the batch is
// applied, its keys are recorded for repair and it is acknowledged; once
// Redis answers, the Repairer brings the entries up to date.
func TestCacheOutageDoesNotHoldWrites(t *testing.T) {
	h := newHarness(t)
	// An entry cached before the outage, which the outage leaves stale.
	if err := h.cache.Update(context.Background(), []kv.Item{put("a", "0", 1).writes[0].Item()}); err != nil {
		t.Fatal(err)
	}
	h.cache.SetErr(kvtest.ErrDown)
	msgs := []message{put("a", "1", 2), put("b", "1", 3), del("a", 4), put("c", "1", 5), put("d", "1", 6), garbage}
	h.run(t, msgs...)

	want := newestState(msgs)
	if got := h.store.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("store = %v\nwant    %v", got, want)
	}
	wantSettled := []settlement{
		{kind: "ack", tag: 4, multiple: true},
		{kind: "reject", tag: 6},
		{kind: "ack", tag: 5, multiple: true},
	}
	if got := h.acks.settlements(); !reflect.DeepEqual(got, wantSettled) {
		t.Errorf("settlements = %v, want %v", got, wantSettled)
	}
	if got := h.writes(t, "retried"); got != 0 {
		t.Errorf("retried = %v, want 0: the batch was not held", got)
	}
	marked := h.store.StaleKeys()
	for key, item := range want {
		if v, ok := marked[key]; !ok || v != item.Version {
			t.Errorf("key %q recorded for repair at %v (present %v), want %v", key, v, ok, item.Version)
		}
	}

	repairer := consumer.NewRepairer(consumer.Repairer{Log: h.store, Cache: h.cache, Interval: time.Hour,
		BatchLimit: 3, Logger: slog.New(slog.DiscardHandler)}, h.reg)
	if n, err := repairer.RepairOnce(context.Background()); err == nil || n != 0 {
		t.Errorf("RepairOnce while Redis is down = %d, %v; want 0 and an error", n, err)
	}
	h.cache.SetErr(nil)
	if n, err := repairer.RepairOnce(context.Background()); err != nil || n != len(want) {
		t.Fatalf("RepairOnce = %d, %v; want %d repaired", n, err, len(want))
	}
	h.checkState(t, want)
	if left := h.store.StaleKeys(); len(left) != 0 {
		t.Errorf("keys still recorded after the repair: %v", left)
	}
}

// While the cache is failing, the consumer does not ask it again for every
// batch (each try costs a Redis timeout): later batches go straight to the
// repair log.
func TestCacheIsLeftAloneRightAfterAFailure(t *testing.T) {
	h := newHarness(t)
	counting := &countingCache{MemoryCache: h.cache}
	h.consumer = consumer.New(consumer.Config{
		BatchSize: 1, BatchWait: time.Hour, DrainTimeout: time.Second, RetryMin: time.Millisecond, RetryMax: time.Millisecond,
		RowError: func(error) bool { return false }, Now: func() time.Time { return appliedAt }, Logger: slog.New(slog.DiscardHandler),
	}, h.store, counting, prometheus.NewRegistry())
	h.cache.SetErr(kvtest.ErrDown)
	h.run(t, put("a", "1", 1), put("b", "1", 2), put("c", "1", 3))
	if got := counting.updates(); got != 1 {
		t.Errorf("the cache was asked %d times for three batches within a second, want 1", got)
	}
	if got := len(h.store.StaleKeys()); got != 3 {
		t.Errorf("%d keys recorded for repair, want 3", got)
	}
}

type countingCache struct {
	*kvtest.MemoryCache
	mu sync.Mutex
	n  int
}

func (c *countingCache) Update(ctx context.Context, items []kv.Item) error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.MemoryCache.Update(ctx, items)
}

func (c *countingCache) updates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// The guards: a put older than the tombstone retention may not resurrect a
// key whose delete was purged, and a version far ahead of the clock may not
// win every later write. Both are dead-lettered and counted.
func TestGuardsRefuseWritesOutsideTheWindow(t *testing.T) {
	at := func(d time.Duration, n uint64) uint64 { return uint64(appliedAt.Add(d).UnixMilli())<<16 | n }
	h := newHarness(t, func(c *consumer.Config, _ *consumer.Store) {
		c.TombstoneRetention = 24 * time.Hour
		c.MaxClockSkew = time.Minute
	})
	msgs := []message{
		put("ancient", "v", at(-25*time.Hour, 0)),      // refused: older than the retention
		del("old-delete", at(-25*time.Hour, 1)),        // a delete cannot resurrect anything: applied
		put("recent", "v", at(-23*time.Hour, 0)),       // inside the retention: applied
		put("future", "v", at(2*time.Minute, 0)),       // refused: too far ahead
		put("near-future", "v", at(30*time.Second, 0)), // within the skew: applied
	}
	h.run(t, msgs...)

	var rejected []uint64
	for _, s := range h.acks.of("reject") {
		rejected = append(rejected, s.tag)
	}
	if want := []uint64{1, 4}; !slices.Equal(rejected, want) {
		t.Errorf("dead-lettered tags %v, want %v", rejected, want)
	}
	want := newestState(msgs)
	delete(want, "ancient")
	delete(want, "future")
	h.checkState(t, want)
	if got := h.store.Snapshot(); len(got) != len(want) {
		t.Errorf("store = %v, want only %v", got, want)
	}
	for _, reason := range []string{"older_than_retention", "future_version"} {
		if got := h.metricWith(t, "kvfleet_consumer_guarded_total", "reason", reason).GetCounter().GetValue(); got != 1 {
			t.Errorf("guarded{reason=%q} = %v, want 1", reason, got)
		}
	}
}

// settledTags splits the recorded settlements into dead-lettered tags and
// the tags of multiple acks, failing on anything else.
func (h *harness) settledTags(t *testing.T) (rejected, acked []uint64) {
	t.Helper()
	for _, s := range h.acks.settlements() {
		switch {
		case s.kind == "reject" && !s.requeue:
			rejected = append(rejected, s.tag)
		case s.kind == "ack" && s.multiple:
			acked = append(acked, s.tag)
		default:
			t.Errorf("unexpected %v", s)
		}
	}
	return rejected, acked
}

func TestGroupedMessageIsAppliedWhole(t *testing.T) {
	h := newHarness(t)
	msgs := []message{
		group(put("a", "1", 10), put("b", "1", 11), put("a", "2", 12)),
		put("c", "1", 13),
	}
	h.run(t, msgs...)

	h.checkState(t, newestState(msgs))
	if rejected, acked := h.settledTags(t); rejected != nil || !slices.Equal(acked, []uint64{2}) {
		t.Errorf("dead-lettered %v and acked %v, want one multiple ack of tag 2", rejected, acked)
	}
	if got := h.writes(t, "applied"); got != 3 {
		t.Errorf("applied writes = %v, want 3 (a, b, c)", got)
	}
	if got := h.writes(t, "superseded"); got != 1 {
		t.Errorf("superseded writes = %v, want 1 (the older a)", got)
	}
	if got := h.messages(t, "acked"); got != 2 {
		t.Errorf("acked messages = %v, want 2", got)
	}
}

func TestBatchBoundCountsWritesNotMessages(t *testing.T) {
	// Batches of at most four writes; a message is never split, so a
	// message that would take a batch over four writes starts the next
	// one, and a message of more than four writes is a batch of its own.
	h := newHarness(t)
	msgs := []message{
		group(put("a", "1", 1), put("b", "1", 2), put("c", "1", 3)), // tag 1: 3 writes
		group(put("d", "1", 4), put("e", "1", 5)),                   // tag 2: would make 5, next batch
		put("f", "1", 6), // tag 3: batch of 3
		group(put("g", "1", 7), put("h", "1", 8), put("i", "1", 9), put("j", "1", 10), put("k", "1", 11)), // tag 4: 5 writes alone
		put("l", "1", 12), // tag 5
	}
	h.run(t, msgs...)

	if rejected, acked := h.settledTags(t); rejected != nil || !slices.Equal(acked, []uint64{1, 3, 4, 5}) {
		t.Errorf("dead-lettered %v and acked %v, want acks 1, 3, 4, 5", rejected, acked)
	}
	h.checkState(t, newestState(msgs))
	batches := h.metric(t, "kvfleet_consumer_batch_size", "").GetHistogram()
	if batches.GetSampleCount() != 4 || batches.GetSampleSum() != 12 {
		t.Errorf("batch size histogram has %d batches of %v writes in all, want 4 batches of 12",
			batches.GetSampleCount(), batches.GetSampleSum())
	}
}

func TestRefusedWriteDeadLettersItsWholeMessage(t *testing.T) {
	h := newHarness(t, withStore(func(s *kvtest.MemoryStore) consumer.Store { return refusingStore{s, "bad"} }))
	msgs := []message{
		put("a", "1", 1),
		group(put("b", "1", 2), put("bad", "x", 3)), // tag 2: dead-lettered whole
		put("c", "1", 4),
	}
	h.run(t, msgs...)

	rejected, acked := h.settledTags(t)
	if !slices.Equal(rejected, []uint64{2}) || !slices.Equal(acked, []uint64{3}) {
		t.Errorf("dead-lettered %v and acked %v, want 2 dead-lettered and an ack of 3", rejected, acked)
	}
	// b shared the message with the refused write but is a good write of
	// its own: it is applied, and the dead-lettered copy is harmless to
	// replay (its version is already stored).
	want := newestState(msgs)
	delete(want, "bad")
	h.checkState(t, want)
	if got := h.messages(t, "dead_lettered"); got != 1 {
		t.Errorf("dead-lettered messages = %v, want 1", got)
	}
	if got := h.writes(t, "dead_lettered"); got != 2 {
		t.Errorf("dead-lettered writes = %v, want 2 (the message's both)", got)
	}
}

func TestGuardDeadLettersTheWholeMessage(t *testing.T) {
	at := func(d time.Duration, n uint64) uint64 { return uint64(appliedAt.Add(d).UnixMilli())<<16 | n }
	h := newHarness(t, func(c *consumer.Config, _ *consumer.Store) { c.MaxClockSkew = time.Minute })
	msgs := []message{
		group(put("now", "v", at(0, 1)), put("future", "v", at(2*time.Minute, 0))), // tag 1
		put("other", "v", at(0, 2)), // tag 2
	}
	h.run(t, msgs...)

	rejected, acked := h.settledTags(t)
	if !slices.Equal(rejected, []uint64{1}) || !slices.Equal(acked, []uint64{2}) {
		t.Errorf("dead-lettered %v and acked %v, want 1 dead-lettered and an ack of 2", rejected, acked)
	}
	// Nothing of a guarded message is applied: it is settled as one, and
	// its writes share the clock the guard judged.
	h.checkState(t, newestState(msgs[1:]))
	if got := h.store.Snapshot(); len(got) != 1 {
		t.Errorf("store = %v, want only \"other\"", got)
	}
	if got := h.metricWith(t, "kvfleet_consumer_guarded_total", "reason", "future_version").GetCounter().GetValue(); got != 2 {
		t.Errorf("guarded{future_version} = %v, want 2 (both writes of the message)", got)
	}
}

func TestGroupedPoisonIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	v := kvtest.V(9).String()
	msgs := []message{
		put("a", "1", 1),
		poison(`{"writes":[{"op":"put","key":"b","value":"1","version":"` + v + `"},{"op":"upsert","key":"c","version":"` + v + `"}]}`),
		put("d", "1", 2),
	}
	h.run(t, msgs...)

	rejected, acked := h.settledTags(t)
	if !slices.Equal(rejected, []uint64{2}) || !slices.Equal(acked, []uint64{3}) {
		t.Errorf("dead-lettered %v and acked %v, want 2 dead-lettered and an ack of 3", rejected, acked)
	}
	// The good first write of the poison message is not applied: a message
	// with a bad part did not come from a compatible API.
	if _, ok := h.store.Snapshot()["b"]; ok {
		t.Error("a write of an undecodable message was applied")
	}
}
