package main

import (
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/events"
	"github.com/refit-dev/refit/internal/serve"
)

func newServeCmd() *cobra.Command {
	var cfg serve.Config
	var verbose bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the refit server (API, embedded registry, job queue, managed BuildKit)",
		Long: `Run the refit server with embedded defaults: state in SQLite, an OCI registry,
and a BuildKit daemon that refit starts and supervises (runc and buildkitd
must be installed; run as root). Everything lives under --data.

On first start an admin token is created, written to <data>/admin-token
(mode 0600) and printed once. Stop with Ctrl-C (SIGINT) or SIGTERM: running
builds are canceled and their runs marked canceled.`,
		Example: `  # embedded defaults, everything under ./refit-data
  refit serve

  # use an existing BuildKit (buildx, Docker Desktop, a remote daemon)
  refit serve --buildkit docker-container://buildx_buildkit_default

  # pick free ports (tests, several instances)
  refit serve --listen 127.0.0.1:0 --registry-listen 127.0.0.1:0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.BuildKit == "" {
				cfg.BuildKit = os.Getenv("BUILDKIT_HOST")
			}
			for _, f := range []string{"distribution", "harbor", "dockerhub", "acr"} {
				if v := os.Getenv("REFIT_HOOK_SECRET_" + strings.ToUpper(f)); v != "" && cfg.HookSecrets[f] == "" {
					if cfg.HookSecrets == nil {
						cfg.HookSecrets = map[string]string{}
					}
					cfg.HookSecrets[f] = v
				}
			}
			if v := os.Getenv("REFIT_DATABASE_URL"); v != "" && cfg.DatabaseURL == "" {
				cfg.DatabaseURL = v
			}
			if v := os.Getenv("REFIT_NATS_URL"); v != "" && cfg.NATS.URL == "" {
				cfg.NATS.URL = v
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg.Out = cmd.OutOrStdout()
			s, err := serve.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return s.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", defaultDataDir(), "data directory (database, registry storage, BuildKit state, admin token)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:7300", "API address")
	f.StringVar(&cfg.RegistryListen, "registry-listen", "127.0.0.1:5000", "embedded registry address")
	f.StringVar(&cfg.BuildKit, "buildkit", "", "existing BuildKit daemon address (unix://, tcp://, docker-container://); default $BUILDKIT_HOST, else a managed buildkitd")
	f.StringVar(&cfg.BuildKitBinary, "buildkitd", "", "buildkitd binary to manage (default: $REFIT_BUILDKITD, ./bin/buildkitd, $PATH)")
	f.StringSliceVar(&cfg.Insecure, "insecure-registry", nil, "registry host:port to reach over plain HTTP (repeatable)")
	f.IntVar(&cfg.Workers, "workers", 2, "runs that build at once")
	f.DurationVar(&cfg.PollInterval, "poll-interval", 5*time.Minute, "how often each base image reference is checked (one HEAD request)")
	f.DurationVar(&cfg.GitPollInterval, "git-poll-interval", time.Minute, "how often each git repository a task builds on commit is listed (one git ls-remote, jittered ±10%); negative = webhooks only")
	f.DurationVar(&cfg.Debounce, "debounce", 30*time.Second, "wait this long after a base update before building, so a burst of updates builds once (0 = default, negative = none)")
	f.StringToStringVar(&cfg.HookSecrets, "hook-secret", nil, "enable a registry webhook: FORMAT=SECRET, FORMAT one of distribution, harbor, dockerhub, acr (repeatable; or $REFIT_HOOK_SECRET_<FORMAT>, which keeps it out of the process list)")
	f.StringVar(&cfg.DatabaseURL, "database", "", "keep state in PostgreSQL at this URL (postgres://user@host:5432/refit) instead of SQLite in --data; or $REFIT_DATABASE_URL, which keeps the password out of the process list")
	f.StringVar(&cfg.SecretKeyFile, "secret-key-file", "", "key that encrypts stored registry logins, created if missing (default <data>/secret.key; keep it out of backups of the database)")
	f.StringVar(&cfg.SigningKeyFile, "signing-key-file", "", "ed25519 key that signs the attestation attached to every image and the audit export's checkpoint, created if missing (default <data>/signing.key)")
	f.DurationVar(&cfg.CheckTimeout, "check-timeout", 20*time.Second, "give up on one base image look-up at a registry after this long")
	f.Int64Var(&cfg.Catalog.Bytes, "catalog-max-bytes", 1<<30, "read at most this many compressed bytes of an image's layers to find its package database")
	f.Int64Var(&cfg.Catalog.File, "catalog-max-file", 64<<20, "refuse a package database (or os-release) larger than this many bytes; an rpm database is copied to a temporary file (TMPDIR) and parsed in a child process")
	f.DurationVar(&cfg.Catalog.Time, "catalog-max-time", 2*time.Minute, "give up cataloguing one image after this long")
	f.StringSliceVar(&cfg.WatchAllow, "watch-allow", nil, "only check base images on these registry hosts")
	f.StringSliceVar(&cfg.WatchDeny, "watch-deny", nil, "never check base images on these registry hosts")
	f.DurationVar(&cfg.EventRetryFor, "event-retry-for", 24*time.Hour, "retry an event delivery this long before dead-lettering it")
	f.DurationVar(&cfg.EventRetention, "event-retention", 30*24*time.Hour, "keep delivered events this long")
	f.StringSliceVar(&cfg.SubscriptionHosts, "subscription-hosts", nil, "only these hosts may be event subscription targets (multi-tenant installs)")
	f.StringSliceVar(&cfg.SourceDirs, "source-dir", nil, "only directories under these may be a task's dir source (repeatable; default any, except the data directory and key file, which are always refused)")
	f.StringVar(&cfg.NATS.URL, "nats-url", "", "also publish every event to NATS JetStream at this URL (nats://host:4222; or $REFIT_NATS_URL, which keeps credentials out of the process list)")
	f.StringVar(&cfg.NATS.Stream, "nats-stream", events.DefaultNATSStream, "JetStream stream for events; created (subjects <prefix>.>) if missing")
	f.StringVar(&cfg.NATS.Prefix, "nats-subject-prefix", events.DefaultNATSPrefix, "events are published on <prefix>.<type>, e.g. refit.base.updated")
	f.StringVar(&cfg.NATS.CredsFile, "nats-creds", "", "NATS credentials file (JWT and seed)")
	f.Int64Var(&cfg.VulnDBMaxBytes, "vulndb-max-bytes", 1<<30, "largest OSV export 'refit vulndb import' may upload (bytes)")
	f.BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	return cmd
}
