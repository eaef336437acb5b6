package queue

import (
	"testing"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// The broker may have delivered Prefetch messages that the consumer has not
// acknowledged; at the largest size the limits allow, they must fit in
// PrefetchBytes.
func TestEffectivePrefetchFitsTheByteBudget(t *testing.T) {
	limits := kv.Limits{MaxKeyBytes: 1 << 10, MaxValueBytes: 1 << 20}
	largest := MaxMessageBytes(limits.MaxKeyBytes+limits.MaxValueBytes, 1)
	tests := []struct {
		prefetch, budget, want int
	}{
		{256, 64 << 20, (64 << 20) / largest}, // 63: the budget decides
		{10, 64 << 20, 10},                    // the count decides
		{256, 1 << 20, 1},                     // never below one
		{256, 0, 256},                         // no budget
	}
	for _, tt := range tests {
		s := NewSubscriber(SubscriberConfig{Prefetch: tt.prefetch, PrefetchBytes: tt.budget, Limits: limits})
		got := s.EffectivePrefetch()
		if got != tt.want {
			t.Errorf("prefetch %d, budget %d: %d, want %d", tt.prefetch, tt.budget, got, tt.want)
		}
		if tt.budget > 0 && got > 1 && got*largest > tt.budget {
			t.Errorf("prefetch %d × %d bytes is over the budget %d", got, largest, tt.budget)
		}
	}
}
