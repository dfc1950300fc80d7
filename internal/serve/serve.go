// Package serve owns running a refit server process: it opens the store,
// starts the embedded registry, connects to (or starts and supervises) a
// BuildKit daemon, starts the run queue and the HTTP API, and stops them
// all, in order, when its context ends. It holds no logic of its own
// beyond that wiring.
package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/build"
	"github.com/refit-dev/refit/internal/buildkitd"
	"github.com/refit-dev/refit/internal/catalog"
	"github.com/refit-dev/refit/internal/events"
	"github.com/refit-dev/refit/internal/githook"
	"github.com/refit-dev/refit/internal/gitpoll"
	"github.com/refit-dev/refit/internal/hook"
	"github.com/refit-dev/refit/internal/index"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/regauth"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/registry"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/source"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/vulndb"
)

// Config is everything `refit serve` can be told.
type Config struct {
	// DataDir holds the database, registry storage, BuildKit state and
	// the admin token (required).
	DataDir string
	// Listen is the API address. Default "127.0.0.1:7300"; port 0 picks one.
	Listen string
	// RegistryListen is the embedded registry's address. Default
	// "127.0.0.1:5000"; port 0 picks one.
	RegistryListen string
	// BuildKit is the address of an existing BuildKit daemon (unix://,
	// tcp://, docker-container://). "" = start a managed buildkitd. The
	// daemon need not answer at start: until it does, /readyz says builds
	// are unavailable and runs wait for it.
	BuildKit string
	// BuildKitBinary is the buildkitd to manage; "" = search (see
	// buildkitd.Config.Binary).
	BuildKitBinary string
	// Insecure lists extra registries (host:port) reached over plain HTTP.
	Insecure []string
	// Workers is how many runs build at once. Default 2.
	Workers int
	// PollInterval is how often each base reference is checked. Default
	// 5 min.
	PollInterval time.Duration
	// Debounce delays runs caused by a base update so a burst of updates
	// yields one run. Default 30 s; negative = none.
	Debounce time.Duration
	// HookSecrets holds the registry webhook endpoints' secrets
	// (/hooks/registry/{distribution,harbor,dockerhub,acr}), one per
	// format; the endpoints are always served, and a format without a
	// secret is refused (403).
	HookSecrets map[string]string
	// GitPollInterval is how often each git repository that a task with
	// the commit trigger builds from is listed (git ls-remote), jittered
	// by ±10%. Default 1 min; negative = no polling (webhooks only).
	GitPollInterval time.Duration
	// DatabaseURL, when set, keeps refit's state in PostgreSQL
	// (postgres://user:password@host:5432/refit) instead of SQLite in
	// DataDir.
	DatabaseURL string
	// SecretKeyFile holds the key that seals stored registry passwords
	// (created when missing). Default <DataDir>/secret.key.
	SecretKeyFile string
	// SigningKeyFile holds the ed25519 key that signs the attestation
	// attached to every pushed image (created when missing, mode 0600).
	// Default <DataDir>/signing.key.
	SigningKeyFile string
	// CheckTimeout bounds one look-up of a base reference at its registry
	// (waiting for a slot included). Default 20 s.
	CheckTimeout time.Duration
	// WatchAllow and WatchDeny restrict which registries the watcher
	// checks (empty allow = all).
	WatchAllow, WatchDeny []string
	// EventRetryFor is how long an event delivery is retried before it is
	// dead-lettered. Default 24 h.
	EventRetryFor time.Duration
	// EventRetention is how long delivered events are kept. Default 30 days.
	EventRetention time.Duration
	// SubscriptionHosts, when set, are the only hosts event subscriptions
	// may target (multi-tenant installs).
	SubscriptionHosts []string
	// SourceDirs, when set, are the only server directories (and their
	// subdirectories) that a task's dir source may name. Empty = any
	// directory. The data directory and the key file are always refused.
	SourceDirs []string
	// Catalog bounds reading one image's package catalog (compressed
	// bytes, one database file, time); zero fields take their defaults
	// (1 GiB, 64 MiB, 2 min).
	Catalog catalog.Limits
	// NATS, when its URL is set, also publishes every event to NATS
	// JetStream (subjects "refit.<type>").
	NATS events.NATSConfig
	// VulnDBMaxBytes bounds an OSV export uploaded to POST /api/v1/vulndb.
	// Default 1 GiB.
	VulnDBMaxBytes int64
	// Logger receives the server's log. nil = text to stderr.
	Logger *slog.Logger
	// Out receives the start-up banner. nil = stdout.
	Out io.Writer
}

// Server is a running refit.
type Server struct {
	// APIURL is the base URL of the HTTP API ("http://127.0.0.1:7300").
	APIURL string
	// RegistryAddr is the embedded registry's host:port.
	RegistryAddr string
	// BuildKitAddr is the BuildKit daemon in use.
	BuildKitAddr string
	// TokenFile holds the admin token.
	TokenFile string
	// Daemon is the managed buildkitd, nil when BuildKit was given.
	Daemon *buildkitd.Daemon

	done chan struct{}
	err  error // set before done is closed
}

// Wait blocks until the server has stopped (its context ended) and
// returns the shutdown's errors. It may be called any number of times.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// Start brings refit up and returns once it accepts requests. It stops
// when ctx ends; Wait reports when that is complete.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("serve: no data directory")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7300"
	}
	if cfg.RegistryListen == "" {
		cfg.RegistryListen = "127.0.0.1:5000"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	log := cfg.Logger
	data, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	for _, d := range []string{"", "registry", "work"} {
		if err := os.MkdirAll(filepath.Join(data, d), 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}

	var cleanups []func(context.Context) error
	cleanup := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i](ctx))
		}
		return errors.Join(errs...)
	}
	started := false
	defer func() {
		if !started {
			cleanup()
		}
	}()

	// Configuration errors first, before anything starts.
	var natsSink *events.NATSSink // connects in RunSink
	if cfg.NATS.URL != "" {
		if natsSink, err = events.NewNATSSink(cfg.NATS); err != nil {
			return nil, err
		}
	}

	dbCfg := store.Config{Path: filepath.Join(data, "refit.db")}
	if cfg.DatabaseURL != "" {
		dbCfg = store.Config{URL: cfg.DatabaseURL}
	}
	st, err := store.Open(ctx, dbCfg)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func(context.Context) error { return st.Close() })

	// Registry logins stored in refit, sealed with the secret key; the
	// registry client drops its sessions when one changes (it reads their
	// Generation).
	keyFile := cmp.Or(cfg.SecretKeyFile, filepath.Join(data, "secret.key"))
	key, err := regauth.LoadKey(keyFile)
	if err != nil {
		return nil, err
	}
	creds, err := regauth.New(regauth.Config{Store: st, Key: key})
	if err != nil {
		return nil, err
	}
	// The key attestations are signed with: its ID is the server's id.
	signingKeyFile := cmp.Or(cfg.SigningKeyFile, filepath.Join(data, "signing.key"))
	signer, err := attest.LoadKey(signingKeyFile)
	if err != nil {
		return nil, err
	}

	tokenFile := filepath.Join(data, "admin-token")
	newToken, err := ensureAdminToken(ctx, st, tokenFile)
	if err != nil {
		return nil, err
	}

	// The embedded registry's address; it serves once the watcher that
	// its pushes hint exists.
	regLn, err := net.Listen("tcp", cfg.RegistryListen)
	if err != nil {
		return nil, fmt.Errorf("listening for the registry on %s: %w", cfg.RegistryListen, err)
	}
	cleanups = append(cleanups, func(context.Context) error { regLn.Close(); return nil })
	regAddr := regLn.Addr().String()
	// One rule for plain HTTP: the embedded registry, the configured ones
	// and loopback (see regclient.Insecure).
	insecure := regclient.Insecure(append([]string{regAddr}, cfg.Insecure...))

	// BuildKit. A given daemon need not answer yet: refit starts without
	// it, /readyz says builds are unavailable, and runs wait for it.
	bkAddr := cfg.BuildKit
	var daemon *buildkitd.Daemon
	// ready waits until BuildKit answers (before each build); readyz
	// asks it once (for /readyz).
	var ready, readyz func(ctx context.Context) error
	if bkAddr == "" {
		daemon, err = buildkitd.Start(ctx, buildkitd.Config{
			Binary:             cfg.BuildKitBinary,
			Root:               filepath.Join(data, "buildkit"),
			InsecureRegistries: insecure,
			Logger:             log,
			// A managed daemon that cannot start (yet) does not stop
			// refit either: it keeps trying, and runs wait for it.
			KeepTrying: true,
		})
		if err != nil {
			return nil, fmt.Errorf("%w\n(or point refit at a running BuildKit with --buildkit ADDR)", err)
		}
		cleanups = append(cleanups, daemon.Stop)
		bkAddr = daemon.Address()
		ready = daemon.Ready
		readyz = func(ctx context.Context) error {
			if err := daemon.Unavailable(); err != nil {
				return err
			}
			return daemon.Ready(ctx)
		}
	} else {
		addr := bkAddr
		ready = func(ctx context.Context) error { return buildkitd.Wait(ctx, addr) }
		readyz = func(ctx context.Context) error {
			if err := buildkitd.Probe(ctx, addr); err != nil {
				return fmt.Errorf("buildkit at %s does not answer: %w", addr, err)
			}
			return nil
		}
		if err := readyz(ctx); err != nil {
			log.Warn("builds are unavailable until buildkit answers; runs wait for it", "err", err)
		}
	}

	// One registry client for the watcher's checks and the runs' base
	// lookups, so both share sessions and per-registry limits.
	checker := regclient.New(regclient.Config{Keychain: creds, Insecure: insecure, Timeout: cfg.CheckTimeout})

	// The executor, and the lifecycle that queues, finishes and cascades
	// runs and plans them from base updates. Every committed run is
	// counted, whoever queued it.
	metrics := prometheus.NewRegistry()
	st.OnRunQueued(lifecycle.NewMetrics(metrics).RunQueued)
	run, err := runner.New(runner.Config{
		Store:        st,
		Builder:      build.New(func() string { return bkAddr }, creds),
		Resolver:     checker,
		Registry:     regAddr,
		Insecure:     cfg.Insecure,
		WorkDir:      filepath.Join(data, "work"),
		SourceDirs:   source.DirPolicy{Allow: cfg.SourceDirs, Deny: []string{data, keyFile, signingKeyFile}},
		BuilderReady: ready,
		Signer:       signer,
		Attestations: checker,
	})
	if err != nil {
		return nil, err
	}
	// Package catalogs and diffs of images, through the same registry
	// client, cached per digest in the store.
	vulns := vulndb.New(vulndb.Config{Store: st})
	// Rows an import left when refit stopped in its middle (the current
	// database is whole either way).
	if err := st.CleanVulns(ctx); err != nil {
		log.Warn("cleaning the vulnerability database", "err", err)
	}
	catalogs, err := catalog.NewService(catalog.Config{Images: checker, Store: st, Limits: cfg.Catalog,
		Vulns: catalogVulns{vulns}, Ecosystem: vulndb.Ecosystem})
	if err != nil {
		return nil, err
	}
	runs, err := lifecycle.New(ctx, lifecycle.Config{
		Store:    st,
		Executor: run,
		Registry: regAddr,
		Debounce: cfg.Debounce,
		Interval: cfg.PollInterval,
		Workers:  cfg.Workers,
		Logger:   log.With("component", "runs"),
		Tagger:   checker, // promotions move tags through the one registry client
		Differ:   catalogs,
	})
	if err != nil {
		return nil, err
	}

	// The base image watcher commits what it sees through the lifecycle;
	// pushes and webhooks hint it.
	watcher, err := index.NewWatcher(index.WatcherConfig{
		Store:    st,
		Checker:  checker,
		Observer: runs,
		Interval: cfg.PollInterval,
		Allow:    cfg.WatchAllow,
		Deny:     cfg.WatchDeny,
		Logger:   log.With("component", "watcher"),
		Metrics:  index.NewMetrics(metrics),
		// Followed repositories' tags (triggers.baseTags, watches) are
		// listed by the same client, on the same sessions and limits.
		Tags:        checker,
		TagObserver: runs,
	})
	if err != nil {
		return nil, err
	}

	// Embedded registry. Pushes to it are observed in-process: a tracked
	// reference is checked at once, no polling needed.
	reg, err := registry.New(ctx, registry.Config{
		Dir:    filepath.Join(data, "registry"),
		Logger: log.With("component", "registry"),
		OnPush: func(p registry.PushEvent) {
			if p.Tag != "" {
				watcher.Hint(ctx, []string{regAddr + "/" + p.Repository + ":" + p.Tag}, "push", "")
			}
		},
	})
	if err != nil {
		return nil, err
	}
	regSrv := &http.Server{Handler: reg, ReadHeaderTimeout: 30 * time.Second}
	go regSrv.Serve(regLn)
	cleanups = append(cleanups, regSrv.Shutdown)

	if err := runs.Start(ctx); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, runs.Stop)

	// The scheduler queues the tasks' scheduled runs (triggers.schedule);
	// a task change wakes it (see the OnCommit hook below).
	sched, err := lifecycle.NewScheduler(lifecycle.SchedulerConfig{
		Runs:   runs,
		Store:  st,
		Logger: log.With("component", "scheduler"),
	})
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, background(ctx, sched.Run))
	cleanups = append(cleanups, background(ctx, func(ctx context.Context) { watcher.Run(ctx) }))

	// Git polling: one ls-remote per repository per interval; a moved
	// head is committed through the lifecycle like a webhook's push.
	if cfg.GitPollInterval >= 0 {
		poller, err := gitpoll.New(gitpoll.Config{
			Repos:    runs.CommitRepos,
			Store:    st,
			Pusher:   runs,
			Interval: cfg.GitPollInterval,
			Record:   st.RecordGitDelivery,
			Logger:   log.With("component", "gitpoll"),
		})
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, background(ctx, poller.Run))
	}

	// Events: the dispatcher delivers the outbox; a commit wakes it when
	// it wrote events a subscription or sink wants.
	dispatcher, err := events.New(events.Config{
		Store:      st,
		RetryFor:   cfg.EventRetryFor,
		Retention:  cfg.EventRetention,
		AllowHosts: cfg.SubscriptionHosts,
		Metrics:    events.NewMetrics(metrics),
		Logger:     log.With("component", "events"),
	})
	if err != nil {
		return nil, err
	}
	// The NATS sink gets every event too. Forget sinks no longer
	// configured, so they hold back no pruning.
	var sinkNames []string
	if natsSink != nil {
		sinkNames = append(sinkNames, natsSink.Name())
	}
	if err := st.KeepSinks(ctx, sinkNames...); err != nil {
		return nil, err
	}
	// A commit that made base references due (a task's new base, a
	// hint) wakes the watcher, which otherwise sleeps until the next due
	// check.
	st.OnCommit(func(c store.Commit) {
		dispatcher.Committed(c)
		sched.Committed(c)
		if c.RefsDue {
			watcher.Wake()
		}
	})
	eventsCtx, stopEvents := context.WithCancel(context.WithoutCancel(ctx))
	var eventsDone sync.WaitGroup
	eventsDone.Go(func() { dispatcher.Run(eventsCtx) })
	if natsSink != nil {
		eventsDone.Go(func() {
			defer natsSink.Close()
			dispatcher.RunSink(eventsCtx, natsSink)
		})
	}
	cleanups = append(cleanups, func(context.Context) error {
		st.OnCommit(nil)
		stopEvents()
		eventsDone.Wait()
		return nil
	})

	// API, and the registry webhooks beside it.
	apiLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening for the API on %s: %w", cfg.Listen, err)
	}
	// The webhook endpoints are always served: a format without a secret
	// answers 403 "webhook source X is not configured".
	secrets := map[hook.Format]string{}
	for k, v := range cfg.HookSecrets {
		secrets[hook.Format(k)] = v
	}
	hooks := hook.Handler(hook.Config{
		Secrets: secrets,
		Logger:  log.With("component", "hooks"),
		Accept: func(ctx context.Context, _ hook.Format, pushes []hook.Push) error {
			for _, p := range pushes {
				if p.Tag == "" {
					continue // a push by digest moves no tag
				}
				if err := watcher.Hint(ctx, []string{p.Ref()}, "webhook", p.EventID); err != nil {
					return err
				}
			}
			return nil
		},
	})
	gitHooks := githook.Handler(githook.Config{
		Secret: creds.GitSecret,
		Accept: acceptGitPush(runs),
		Record: recordGitDelivery(st, runs.CommitRepos, log.With("component", "githooks")),
		Logger: log.With("component", "githooks"),
	})
	api := server.New(server.Config{
		Store:      st,
		Runs:       runs,
		Promotions: runs,
		Inspector:  run,
		Bases:      run,
		Index:      st,
		Registry:   regAddr,
		Hooks:      hooks,
		CheckTasks: runs.CheckTasks, // on the planner's cached task graph
		Events:     st,
		Stream:     dispatcher.Stream(),
		ValidateTarget: func(u string) error {
			return events.ValidateTarget(u, cfg.SubscriptionHosts)
		},
		Credentials: creds,
		GitSecrets:  creds,
		GitHooks:    gitHooks,
		Ready:       readyz,
		Logger:      log.With("component", "api"),
		Metrics:     metrics,
		Images:      st,
		Signer:      signer,
		Tags:        checker,
		// One signing key for everything the server signs: attestations
		// and the audit export's checkpoint.
		AuditKey: signer.PrivateKey(),

		VulnDB:         vulns,
		VulnDBMaxBytes: cfg.VulnDBMaxBytes,
		TempDir:        cfg.DataDir, // uploads are spooled beside the data, not in a RAM-backed /tmp
		Catalogs:       catalogs,
	})
	apiSrv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 30 * time.Second,
		// Requests end with the server: followed logs stop streaming.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go apiSrv.Serve(apiLn)
	// Stop taking requests first, then the watcher, the queue (canceling
	// builds), the registry, the daemon and store.
	cleanups = append(cleanups, apiSrv.Shutdown)

	s := &Server{
		APIURL:       "http://" + apiLn.Addr().String(),
		RegistryAddr: regAddr,
		BuildKitAddr: bkAddr,
		TokenFile:    tokenFile,
		Daemon:       daemon,
		done:         make(chan struct{}),
	}
	started = true
	s.banner(cfg.Out, data, dbName(cfg.DatabaseURL), newToken)
	go func() {
		<-ctx.Done()
		log.Info("shutting down: canceling running builds")
		s.err = cleanup()
		close(s.done)
	}()
	return s, nil
}

// dbName names the database for the banner: PostgreSQL's URL without its
// password, or SQLite.
func dbName(url string) string {
	if url == "" {
		return "SQLite (refit.db in data)"
	}
	return "PostgreSQL " + redact.URL(url)
}

func (s *Server) banner(out io.Writer, data, db, newToken string) {
	var b strings.Builder
	fmt.Fprintf(&b, "refit is running\n")
	fmt.Fprintf(&b, "  API        %s   (health %s/healthz, metrics %s/metrics)\n", s.APIURL, s.APIURL, s.APIURL)
	fmt.Fprintf(&b, "  registry   %s   (embedded; images without a registry host go here)\n", s.RegistryAddr)
	fmt.Fprintf(&b, "  buildkit   %s", s.BuildKitAddr)
	if s.Daemon != nil {
		fmt.Fprintf(&b, "   (managed, pid %d)", s.Daemon.PID())
	}
	fmt.Fprintf(&b, "\n  data       %s\n", data)
	fmt.Fprintf(&b, "  database   %s\n", db)
	fmt.Fprintf(&b, "  token      %s (0600)\n", s.TokenFile)
	if newToken != "" {
		fmt.Fprintf(&b, "\nA new admin token was created; it is shown this once:\n  export REFIT_SERVER=%s REFIT_TOKEN=%s\n", s.APIURL, newToken)
	} else {
		fmt.Fprintf(&b, "\n  export REFIT_SERVER=%s REFIT_TOKEN=$(cat %s)\n", s.APIURL, s.TokenFile)
	}
	fmt.Fprint(out, b.String())
}

// ensureAdminToken creates the admin token on first start, writing it to
// a 0600 file; it returns the new secret, or "" when one existed.
func ensureAdminToken(ctx context.Context, st *store.Store, file string) (string, error) {
	n, err := st.CountTokens(ctx)
	if err != nil {
		return "", err
	}
	if n > 0 {
		return "", nil
	}
	secret, err := st.NewToken(ctx, "admin")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing admin token to %s: %w", file, err)
	}
	return secret, nil
}

// background runs run in a goroutine of its own, with a context that
// Start's ctx does not end, and returns the cleanup that cancels that
// context and waits for run to return.
func background(ctx context.Context, run func(context.Context)) func(context.Context) error {
	ctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var done sync.WaitGroup
	done.Go(func() { run(ctx) })
	return func(context.Context) error {
		stop()
		done.Wait()
		return nil
	}
}

// catalogVulns gives the catalog's diffs the offline vulnerability
// database: the same vulnerability, in the catalog's type.
type catalogVulns struct{ db *vulndb.DB }

func (v catalogVulns) Changes(ctx context.Context, ecosystem, name, oldVersion, newVersion string) (fixes, introduces []catalog.Vuln, err error) {
	fx, in, err := v.db.Changes(ctx, ecosystem, name, oldVersion, newVersion)
	conv := func(vs []vulndb.Vuln) []catalog.Vuln {
		out := make([]catalog.Vuln, len(vs))
		for i, x := range vs {
			out[i] = catalog.Vuln(x)
		}
		return out
	}
	return conv(fx), conv(in), err
}
