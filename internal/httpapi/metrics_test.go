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
