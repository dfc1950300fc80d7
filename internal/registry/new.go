package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	// Registers the "filesystem" storage driver with distribution's factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// New creates a registry storing its data under cfg.Dir. Background work of
// the registry (purging stale uploads) stops when ctx is cancelled; the
// Registry must not be used after that. New returns an error if cfg.Dir is
// empty or cannot be created, or if distribution rejects the configuration.
//
// New does not change process-wide logging: distribution's request and
// application logs are routed to cfg.Logger at debug level. A few messages
// that distribution writes straight to logrus's standard logger (the daily
// upload purge summary) still go there.
func New(ctx context.Context, cfg Config) (reg *Registry, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("creating registry: storage dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("creating registry: storage dir %q: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating registry: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dlog := newDistributionLogger(ctx, logger)

	dcfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": dir},
			"delete":     configuration.Parameters{"enabled": true},
		},
	}
	// The secret signs upload state handed to clients; a random one per
	// process only breaks uploads in flight across a restart.
	dcfg.HTTP.Secret = rand.Text()

	// NewApp reports configuration problems by panicking.
	defer func() {
		if p := recover(); p != nil {
			reg, err = nil, fmt.Errorf("creating registry: %v", p)
		}
	}()
	app := handlers.NewApp(withDistributionLogger(ctx, dlog), dcfg)

	return wrap(ctx, app, dlog, cfg), nil
}
