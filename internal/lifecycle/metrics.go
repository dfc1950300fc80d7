package lifecycle

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/refit-dev/refit/internal/store"
)

// Metrics are the lifecycle's Prometheus metrics.
type Metrics struct {
	// Queued counts runs queued, by cause kind (manual, commit, base,
	// schedule, cascade).
	Queued *prometheus.CounterVec
}

// NewMetrics creates the lifecycle's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Queued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refit_runs_queued_total", Help: "Runs queued (committed), by cause kind.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.Queued)
	return m
}

// RunQueued counts one queued run. Give it to store.OnRunQueued, which
// calls it for every committed run whoever queued it (a user, a base
// update's wave, a cascade), so that no path is left uncounted and a
// rolled-back run is never counted.
func (m *Metrics) RunQueued(r store.Run) {
	m.Queued.WithLabelValues(r.Cause.Kind).Inc()
}
