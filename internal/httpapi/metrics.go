package httpapi

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
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
	// and a gateway call makes three of them (its route's two, one per
	// request, share one lookup here).
	usageBy, gatewayBy counterCache
	routeBy            childCache[routeChildren]
}

// labelPair is a child's label values: a label, then a status code.
type labelPair struct {
	label  string
	status int
}

// childCache memoizes the children of metric vectors by their label
// values. Its keys are as bounded as the vectors' own children, which are
// never deleted. A lookup of a known key reads a map published once
// complete (read) without a lock; a miss takes the lock and finds or adds
// the key in dirty, which holds every key, and dirty is published again
// once it served as many misses as it has keys (as sync.Map does, without
// boxing a key in an interface).
type childCache[V any] struct {
	read   atomic.Pointer[map[labelPair]V]
	mu     sync.Mutex
	dirty  map[labelPair]V
	misses int
}

// get returns k's children, made with mk the first time k is asked for.
func (c *childCache[V]) get(k labelPair, mk func(labelPair) V) V {
	if m := c.read.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	return c.miss(k, mk)
}

func (c *childCache[V]) miss(k labelPair, mk func(labelPair) V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.dirty[k]
	if !ok {
		if c.dirty == nil {
			c.dirty = map[labelPair]V{}
		}
		v = mk(k)
		c.dirty[k] = v
	}
	if c.misses++; c.misses >= len(c.dirty) {
		m := maps.Clone(c.dirty)
		c.read.Store(&m)
		c.misses = 0
	}
	return v
}

// counterCache memoizes a counter vector's children by their two label
// values, the second a status code.
type counterCache struct {
	vec   *prometheus.CounterVec
	cache childCache[prometheus.Counter]
}

func (c *counterCache) with(label string, status int) prometheus.Counter {
	return c.cache.get(labelPair{label, status}, c.child)
}

func (c *counterCache) child(k labelPair) prometheus.Counter {
	return c.vec.WithLabelValues(k.label, strconv.Itoa(k.status))
}

// routeChildren are the request metrics' children of one route and status.
type routeChildren struct {
	requests prometheus.Counter
	latency  prometheus.Observer
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
	m.usageBy.vec, m.gatewayBy.vec = m.usage, m.gateway
	reg.MustRegister(m.requests, m.latency, m.storage, m.sealed, m.usage, m.gateway, m.alerts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observeRequest(route string, status int, d time.Duration) {
	c := m.routeBy.get(labelPair{route, status}, m.routeChildren)
	c.requests.Inc()
	c.latency.Observe(d.Seconds())
}

func (m *Metrics) routeChildren(k labelPair) routeChildren {
	return routeChildren{
		requests: m.requests.WithLabelValues(k.label, strconv.Itoa(k.status)),
		latency:  m.latency.WithLabelValues(k.label),
	}
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

// AuditShipping is the state of the audit webhook's shipping
// (audit.Shipper).
type AuditShipping interface {
	Shipped() uint64 // entries this node has shipped
	Failing() bool   // its last attempt failed
	Pending() int64  // stored entries the collector has not taken yet
}

// WatchAuditWebhook exports s.
func (m *Metrics) WatchAuditWebhook(s AuditShipping) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyward_audit_webhook_pending_entries", Help: "Stored audit entries the webhook's collector has not taken yet, on the node that ships them (0 on the others).",
		}, func() float64 { return float64(s.Pending()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyward_audit_webhook_shipped_total", Help: "Audit entries this node has shipped to the audit webhook (the collector answered 2xx).",
		}, func() float64 { return float64(s.Shipped()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyward_audit_webhook_failing", Help: "1 while this node's last attempt to ship audit entries to the webhook failed (they are kept and retried).",
		}, func() float64 {
			if s.Failing() {
				return 1
			}
			return 0
		}))
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
