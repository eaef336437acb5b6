package kvtest_test

import (
	"testing"

	"github.com/kvfleet/kvfleet/internal/kvtest"
)

// The in-memory stand-ins must behave like the real adapters, which run the
// same contracts against PostgreSQL and Redis.

func TestMemoryStoreContract(t *testing.T) {
	kvtest.RunStoreContract(t, func(*testing.T) kvtest.Store { return kvtest.NewMemoryStore() })
}

func TestMemoryCacheContract(t *testing.T) {
	kvtest.RunCacheContract(t, func(*testing.T) kvtest.Cache { return kvtest.NewMemoryCache() })
}

func TestMemoryRepairLogContract(t *testing.T) {
	kvtest.RunRepairLogContract(t, func(*testing.T) (kvtest.RepairLog, func(string)) {
		s := kvtest.NewMemoryStore()
		return s, s.Delete
	})
}
