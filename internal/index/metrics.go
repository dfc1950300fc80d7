package index

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the watcher's Prometheus metrics.
type Metrics struct {
	// Checks counts checks by registry host and result (ok, error).
	Checks *prometheus.CounterVec
	// Requests counts HTTP requests made to each registry host.
	Requests *prometheus.CounterVec
	// Changes counts observed digest changes (per platform).
	Changes prometheus.Counter
	// Detection is the time from a push or webhook to its observation
	// being committed, by source.
	Detection *prometheus.HistogramVec
}

// NewMetrics creates the watcher's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refit_base_checks_total", Help: "Checks of base image references, by registry and result.",
		}, []string{"registry", "result"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refit_registry_requests_total", Help: "HTTP requests the watcher made, by registry.",
		}, []string{"registry"}),
		Changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refit_base_changes_total", Help: "Base image digest changes observed (per platform).",
		}),
		Detection: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "refit_base_detection_seconds",
			Help:    "Time from a push or webhook to its observation being committed.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
	}
	reg.MustRegister(m.Checks, m.Requests, m.Changes, m.Detection)
	return m
}
