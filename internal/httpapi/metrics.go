package httpapi

import (
	"net/http"
	"strconv"
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
	reg.MustRegister(m.requests, m.latency, m.storage, m.sealed, m.usage, m.gateway,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observeRequest(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// ObserveUsage counts one request for the usage metrics: per integration
// for gateway calls, per credential kind otherwise (subjects such as key
// ids are left out of the labels to keep their number bounded).
func (m *Metrics) ObserveUsage(kind, subject string, status int) {
	if kind == "integration" {
		m.gateway.WithLabelValues(subject, strconv.Itoa(status)).Inc()
		return
	}
	m.usage.WithLabelValues(kind, strconv.Itoa(status)).Inc()
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
