package gateway

import (
	"testing"

	"github.com/keyward/keyward/internal/deptest"
)

// Arrows point down: the gateway imports storage, events, the ratelimit
// leaf (to parse its limits) and the sockio leaf (its connections) only; it meets the secret store through
// SecretSource, declared here.
func TestImports(t *testing.T) {
	deptest.Check(t, ".", deptest.OnlyKeyward("internal/storage", "internal/events", "internal/ratelimit", "internal/sockio"))
}
