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
	// Published counts events published to a broker sink, by sink and
	// result (delivered, failed, dead: given up after RetryFor).
	Published *prometheus.CounterVec
	// SinkLag is, per sink, the age of the oldest event it has not yet
	// acknowledged, in seconds (0 when caught up).
	SinkLag *prometheus.GaugeVec
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
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refit_event_sink_publishes_total", Help: "Events published to broker sinks, by sink and result.",
		}, []string{"sink", "result"}),
		SinkLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refit_event_sink_lag_seconds", Help: "Age of the oldest event a broker sink has not acknowledged.",
		}, []string{"sink"}),
	}
	reg.MustRegister(m.Deliveries, m.Lag, m.Published, m.SinkLag)
	return m
}
