package events

import "github.com/prometheus/client_golang/prometheus"

// Delivery results, the values of the result label.
const (
	ResultDelivered = "delivered" // a 2xx response
	ResultFailed    = "failed"    // will be retried
	ResultDead      = "dead"      // given up (dead-lettered)
)

// Metrics are the dispatcher's Prometheus metrics.
type Metrics struct {
	// Deliveries counts delivery attempts by subscription and result
	// (delivered, failed, dead).
	Deliveries *prometheus.CounterVec
	// Lag is, per subscription, the age of its oldest pending delivery's
	// event in seconds (0 when nothing is pending).
	Lag *prometheus.GaugeVec
}

// NewMetrics creates the dispatcher's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refit_event_deliveries_total", Help: "Event delivery attempts, by subscription and result.",
		}, []string{"subscription", "result"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refit_event_delivery_lag_seconds", Help: "Age of the oldest pending event, by subscription.",
		}, []string{"subscription"}),
	}
	reg.MustRegister(m.Deliveries, m.Lag)
	return m
}
