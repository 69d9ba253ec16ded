package httpapi

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The memoized children count into the vectors' own series: one per label
// and status, whatever the order and concurrency of the calls.
func TestMetricsCacheCountsPerLabel(t *testing.T) {
	m := NewMetrics(func() bool { return false })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				m.ObserveUsage("integration", "maps", 200)
				m.ObserveUsage("integration", "maps", 502)
				m.ObserveUsage("integration", "mail", 200)
				m.ObserveUsage("token", "tok-1", 200)
				m.observeRequest("GET /a", 200, 0)
				m.observeRequest("GET /a", 404, 0)
			}
		})
	}
	wg.Wait()
	for _, c := range []struct {
		got  float64
		want float64
		name string
	}{
		{counterValue(t, m.gateway.WithLabelValues("maps", "200")), 800, "maps 200"},
		{counterValue(t, m.gateway.WithLabelValues("maps", "502")), 800, "maps 502"},
		{counterValue(t, m.gateway.WithLabelValues("mail", "200")), 800, "mail 200"},
		{counterValue(t, m.usage.WithLabelValues("token", "200")), 800, "token 200"},
		{counterValue(t, m.requests.WithLabelValues("GET /a", "200")), 800, "GET /a 200"},
		{counterValue(t, m.requests.WithLabelValues("GET /a", "404")), 800, "GET /a 404"},
	} {
		if c.got != c.want {
			t.Errorf("%s counted %v, want %v", c.name, c.got, c.want)
		}
	}
	var h dto.Metric
	if err := m.latency.WithLabelValues("GET /a").(prometheus.Histogram).Write(&h); err != nil {
		t.Fatal(err)
	}
	if n := h.GetHistogram().GetSampleCount(); n != 1600 {
		t.Errorf("GET /a latency has %d samples, want 1600", n)
	}
}

// BenchmarkMetricsGatewayCall is a gateway call's metrics: its request's
// count and latency, its integration's and its token's usage, from many
// goroutines.
func BenchmarkMetricsGatewayCall(b *testing.B) {
	m := NewMetrics(func() bool { return false })
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.observeRequest("GET /v1/gateway/{integration}/{path...}", 200, 1500)
			m.ObserveUsage("integration", "maps", 200)
			m.ObserveUsage("token", "acc", 200)
		}
	})
}

// childCache makes a key's children once, and publishes every key for
// lock-free lookups once its misses paid for the copy.
func TestChildCacheMakesOncePublishes(t *testing.T) {
	var c childCache[int]
	made := map[labelPair]int{}
	mk := func(k labelPair) int { made[k]++; return k.status }
	keys := []labelPair{{"a", 200}, {"a", 404}, {"b", 200}}
	for range 4 {
		for _, k := range keys {
			if got := c.get(k, mk); got != k.status {
				t.Fatalf("get(%v) = %d", k, got)
			}
		}
	}
	for _, k := range keys {
		if made[k] != 1 {
			t.Errorf("%v made %d times, want 1", k, made[k])
		}
	}
	read := c.read.Load()
	if read == nil || len(*read) != len(keys) {
		t.Fatalf("published %v, want all of %v", read, keys)
	}
	for _, k := range keys {
		c.get(k, func(labelPair) int { t.Fatalf("%v made again", k); return 0 })
	}
	if c.misses != 0 {
		t.Errorf("%d misses after publication, want 0", c.misses)
	}
}
