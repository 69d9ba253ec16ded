package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the node's Prometheus registry.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	storage  *prometheus.HistogramVec
	sealed   prometheus.GaugeFunc
	usage    *prometheus.CounterVec
	gateway  *prometheus.CounterVec
	alerts   *prometheus.CounterVec

	// Children of the vectors above, memoized: a lookup in
	// client_golang hashes every label value and takes the vector's lock,
	// and a gateway call makes four of them.
	requestsBy, usageBy, gatewayBy counterCache
	latencyBy                      observerCache
}

// counterCache memoizes a counter vector's children by their two label
// values, the second a status code. Its keys are as bounded as the
// vector's own children, which are never deleted.
type counterCache struct {
	vec *prometheus.CounterVec
	mu  sync.RWMutex
	m   map[labelPair]prometheus.Counter
}

type labelPair struct {
	label  string
	status int
}

func (c *counterCache) with(label string, status int) prometheus.Counter {
	k := labelPair{label, status}
	c.mu.RLock()
	ctr, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return ctr
	}
	ctr = c.vec.WithLabelValues(label, strconv.Itoa(status))
	c.mu.Lock()
	if c.m == nil {
		c.m = map[labelPair]prometheus.Counter{}
	}
	c.m[k] = ctr
	c.mu.Unlock()
	return ctr
}

// observerCache is counterCache for a histogram vector with one label.
type observerCache struct {
	vec *prometheus.HistogramVec
	mu  sync.RWMutex
	m   map[string]prometheus.Observer
}

func (c *observerCache) with(label string) prometheus.Observer {
	c.mu.RLock()
	o, ok := c.m[label]
	c.mu.RUnlock()
	if ok {
		return o
	}
	o = c.vec.WithLabelValues(label)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]prometheus.Observer{}
	}
	c.m[label] = o
	c.mu.Unlock()
	return o
}

// NewMetrics registers keyward's metrics; sealed reports the seal state.
func NewMetrics(sealed func() bool) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_http_requests_total", Help: "HTTP requests by route pattern and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keyward_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		storage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keyward_storage_duration_seconds", Help: "Storage transaction latency by operation and backend.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"op", "backend", "result"}),
		sealed: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyward_sealed", Help: "1 when the barrier is sealed (or uninitialised), 0 when serving.",
		}, func() float64 {
			if sealed() {
				return 1
			}
			return 0
		}),
	}
	m.usage = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyward_credential_requests_total", Help: "Requests made with a credential, by kind (key, token) and status.",
	}, []string{"kind", "status"})
	m.gateway = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyward_integration_requests_total", Help: "Gateway calls by integration and status.",
	}, []string{"integration", "status"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyward_alerts_total", Help: "Anomalies detected in credentials' use, by kind (spike, refusals) and response (alert, revoked, failed).",
	}, []string{"kind", "response"})
	m.requestsBy.vec, m.usageBy.vec, m.gatewayBy.vec, m.latencyBy.vec = m.requests, m.usage, m.gateway, m.latency
	reg.MustRegister(m.requests, m.latency, m.storage, m.sealed, m.usage, m.gateway, m.alerts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observeRequest(route string, status int, d time.Duration) {
	m.requestsBy.with(route, status).Inc()
	m.latencyBy.with(route).Observe(d.Seconds())
}

// ObserveUsage counts one request for the usage metrics: per integration
// for gateway calls, per credential kind otherwise (subjects such as key
// ids are left out of the labels to keep their number bounded).
func (m *Metrics) ObserveUsage(kind, subject string, status int) {
	if kind == "integration" {
		m.gatewayBy.with(subject, status).Inc()
		return
	}
	m.usageBy.with(kind, status).Inc()
}

// ObserveAlert counts one anomaly detected; response is "alert", "revoked"
// or "failed".
func (m *Metrics) ObserveAlert(kind, response string) {
	m.alerts.WithLabelValues(kind, response).Inc()
}

// ObserveStorage records one storage transaction; it matches storage.Observer.
func (m *Metrics) ObserveStorage(op, backend string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.storage.WithLabelValues(op, backend, result).Observe(d.Seconds())
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
