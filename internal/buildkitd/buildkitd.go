// Package buildkitd owns starting, health-checking, restarting and stopping a
// buildkitd process that refit manages when the user gives no --buildkit
// address. It does not build anything: callers connect their own BuildKit
// client to [Daemon.Address].
package buildkitd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/refit-dev/refit/internal/backoff"
)

const (
	defaultStartTimeout   = 30 * time.Second
	defaultRestartBackoff = time.Second
	maxRestartBackoff     = 30 * time.Second
	// stopGrace is how long the supervisor waits after SIGTERM before it
	// sends SIGKILL on its own (Stop's ctx may escalate sooner).
	stopGrace = 10 * time.Second
	// pollInterval is how often readiness is probed.
	pollInterval = 100 * time.Millisecond
	// probeTimeout bounds a single ListWorkers attempt.
	probeTimeout = 2 * time.Second
	// logTailLines is how many daemon log lines start-up errors quote.
	logTailLines = 20
	// maxSocketPath is the usable length of sockaddr_un.sun_path on Linux
	// (108 bytes including the terminating NUL).
	maxSocketPath = 107

	socketName = "buildkitd.sock"
	configName = "buildkitd.toml"
	pidName    = "buildkitd.pid"
	logName    = "buildkitd.log"

	// EnvBinary names the environment variable consulted first when
	// Config.Binary is empty.
	EnvBinary = "REFIT_BUILDKITD"
)

// Config describes the managed daemon. Only Root is required.
type Config struct {
	// Binary is the path to buildkitd. When empty it is searched for:
	// $REFIT_BUILDKITD, then bin/buildkitd next to the running executable,
	// then bin/buildkitd in the working directory and its parents up to the
	// first one holding a go.mod, then buildkitd on $PATH.
	Binary string
	// Root is the daemon's state directory (required). The socket, the
	// generated config, the pid file and the log live under it; the socket
	// moves to a short temporary directory when Root is too long for a unix
	// socket path.
	Root string
	// InsecureRegistries lists host:port entries buildkitd may reach over
	// plain HTTP (and with unverified TLS).
	InsecureRegistries []string
	// Logger receives supervision events; nil discards them.
	Logger *slog.Logger
	// LogFile receives the daemon's stdout and stderr, appended; "" means
	// Root/buildkitd.log.
	LogFile string
	// StartTimeout is how long to wait for a freshly started daemon to list
	// its workers; 0 means 30s.
	StartTimeout time.Duration
	// RestartBackoff is the delay before restarting a daemon that died; it
	// doubles up to 30s while the daemon keeps dying and resets once a
	// daemon has stayed up for 30s. 0 means 1s.
	RestartBackoff time.Duration
	// KeepTrying makes a failed start not an error: Start returns the
	// Daemon after its first attempt whatever the outcome, and the
	// supervisor keeps trying (binary lookup, preflight and launch) with
	// backoff until one succeeds. [Daemon.Unavailable] says why builds
	// cannot run meanwhile. Only an empty Root is still an error.
	KeepTrying bool
}

// PreflightError lists every problem that prevents starting the daemon.
type PreflightError struct {
	Problems []error
}

// Error renders all problems, one per line.
func (e *PreflightError) Error() string {
	var b strings.Builder
	b.WriteString("cannot start a managed buildkitd:")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (e *PreflightError) Unwrap() []error { return e.Problems }

// Preflight reports, in one *PreflightError listing every problem, what
// prevents starting the daemon: Root unset, not running as root, runc missing
// from $PATH, or no usable buildkitd binary. It returns nil when all is well.
// It changes nothing on disk.
func Preflight(cfg Config) error {
	var problems []error
	if cfg.Root == "" {
		problems = append(problems, errors.New("no state directory: Config.Root is empty"))
	}
	if os.Geteuid() != 0 {
		problems = append(problems, fmt.Errorf("not running as root (euid %d): a managed buildkitd needs root; run as root or pass --buildkit ADDR", os.Geteuid()))
	}
	if _, err := exec.LookPath("runc"); err != nil {
		problems = append(problems, fmt.Errorf("runc not found in PATH (apt-get install runc): %w", err))
	}
	if _, err := findBinary(cfg.Binary); err != nil {
		problems = append(problems, err)
	}
	if len(problems) == 0 {
		return nil
	}
	return &PreflightError{Problems: problems}
}

// findBinary resolves Config.Binary as documented on that field.
func findBinary(explicit string) (string, error) {
	const hint = "make deps builds it into bin/"
	if explicit != "" {
		p, err := checkExecutable(explicit)
		if err != nil {
			return "", fmt.Errorf("buildkitd binary %s: %w (%s)", explicit, err, hint)
		}
		return p, nil
	}
	if env := os.Getenv(EnvBinary); env != "" {
		p, err := checkExecutable(env)
		if err != nil {
			return "", fmt.Errorf("buildkitd binary %s (from $%s): %w (%s)", env, EnvBinary, err, hint)
		}
		return p, nil
	}
	var tried []string
	try := func(p string) (string, bool) {
		tried = append(tried, p)
		abs, err := checkExecutable(p)
		return abs, err == nil
	}
	if exe, err := os.Executable(); err == nil {
		if p, ok := try(filepath.Join(filepath.Dir(exe), "bin", "buildkitd")); ok {
			return p, nil
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; {
			if p, ok := try(filepath.Join(dir, "bin", "buildkitd")); ok {
				return p, nil
			}
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath("buildkitd"); err == nil {
		return checkExecutable(p)
	}
	tried = append(tried, "buildkitd in $PATH")
	return "", fmt.Errorf("buildkitd binary not found (tried $%s, %s; %s)", EnvBinary, strings.Join(tried, ", "), hint)
}

// checkExecutable returns the absolute path of p if it is an executable
// regular file.
func checkExecutable(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", errors.New("not a regular file")
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return "", errors.New("not executable")
	}
	return abs, nil
}

// renderConfig produces the buildkitd.toml contents for cfg.
func renderConfig(insecure []string) (string, error) {
	var b strings.Builder
	b.WriteString("# Generated by refit; rewritten on every start.\n")
	for _, r := range insecure {
		if r == "" || strings.ContainsAny(r, "\"\\/ \t\r\n") {
			return "", fmt.Errorf("insecure registry %q: want host:port", r)
		}
		fmt.Fprintf(&b, "\n[registry.%s]\n  http = true\n  insecure = true\n", strconv.Quote(r))
	}
	return b.String(), nil
}

// Daemon is a running, supervised buildkitd. Its methods are safe for
// concurrent use.
type Daemon struct {
	binary     string
	root       string
	socketPath string
	socketDir  string // temporary directory holding the socket, "" if under root
	configPath string
	pidPath    string
	logPath    string
	logFile    *os.File
	log        *slog.Logger

	startTimeout time.Duration
	backoff      time.Duration

	cancel context.CancelFunc // stops supervision; called by Stop
	done   chan struct{}      // closed when the supervisor has finished cleanup
	wg     sync.WaitGroup     // process waiter goroutines

	retry *Config // set with KeepTrying: every attempt re-resolves from it

	mu      sync.Mutex
	cur     *proc // current process, nil when down
	ready   bool  // cur has answered ListWorkers
	lastErr error // last failed start, nil once one succeeded
}

// proc is one buildkitd process.
type proc struct {
	pid     int
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed after cmd.Wait returned
	waitErr error         // valid after exited is closed
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Start validates cfg (see [Preflight]), removes leftovers of a crashed
// previous run under cfg.Root (a stale socket; a buildkitd still running
// from our pid file is killed), launches buildkitd in its own process group
// and waits until a BuildKit client can list its workers. It then supervises
// the daemon until ctx is canceled or Stop is called: a daemon that dies is
// logged and restarted with backoff. Canceling ctx stops the daemon like
// Stop does (wait for it via Stop). On error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.KeepTrying {
		return startTrying(ctx, cfg)
	}
	if err := Preflight(cfg); err != nil {
		return nil, err
	}
	bin, err := findBinary(cfg.Binary)
	if err != nil {
		return nil, err
	}
	d, err := newDaemon(cfg, bin)
	if err != nil {
		return nil, fmt.Errorf("starting buildkitd %s: %w", bin, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	p, err := d.launch(runCtx)
	if err != nil {
		cancel()
		d.wg.Wait()
		d.cleanup()
		return nil, err
	}
	go d.supervise(runCtx, p)
	return d, nil
}

// startTrying is Start with cfg.KeepTrying: one attempt now, then the
// supervisor's retries (see Config.KeepTrying).
func startTrying(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Root == "" {
		return nil, &PreflightError{Problems: []error{errors.New("no state directory: Config.Root is empty")}}
	}
	bin, _ := findBinary(cfg.Binary) // looked up again on every attempt
	d, err := newDaemon(cfg, bin)
	if err != nil {
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	d.retry = &cfg
	runCtx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	p, err := d.attempt(runCtx)
	if err != nil {
		d.log.Error("builds are unavailable: cannot start the managed buildkitd; retrying with backoff (or point refit at a running BuildKit with --buildkit ADDR)", "err", err)
	}
	go d.supervise(runCtx, p)
	return d, nil
}

// attempt looks the binary up again and checks the preflight (with
// KeepTrying: either may have been fixed since), then launches. It
// records the error for Unavailable.
func (d *Daemon) attempt(ctx context.Context) (*proc, error) {
	var p *proc
	err := Preflight(*d.retry)
	if err == nil {
		var bin string
		if bin, err = findBinary(d.retry.Binary); err == nil {
			d.binary = bin
			p, err = d.launch(ctx)
		}
	}
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
	return p, err
}

// Unavailable returns nil while the daemon is up and has answered, and
// otherwise an error saying why builds cannot run now: the last failed
// start (with KeepTrying), or that the daemon is (re)starting.
func (d *Daemon) Unavailable() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.cur != nil && d.ready:
		return nil
	case d.lastErr != nil:
		return fmt.Errorf("the managed buildkitd is not running (refit retries with backoff): %w", d.lastErr)
	default:
		return errors.New("the managed buildkitd is starting")
	}
}

// newDaemon prepares the state directory and files.
func newDaemon(cfg Config, bin string) (_ *Daemon, err error) {
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", cfg.Root, err)
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	d := &Daemon{
		binary:       bin,
		root:         root,
		configPath:   filepath.Join(root, configName),
		pidPath:      filepath.Join(root, pidName),
		logPath:      cfg.LogFile,
		log:          cfg.Logger,
		startTimeout: cfg.StartTimeout,
		backoff:      cfg.RestartBackoff,
		done:         make(chan struct{}),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("component", "buildkitd")
	if d.logPath == "" {
		d.logPath = filepath.Join(root, logName)
	}
	if d.startTimeout <= 0 {
		d.startTimeout = defaultStartTimeout
	}
	if d.backoff <= 0 {
		d.backoff = defaultRestartBackoff
	}

	conf, err := renderConfig(cfg.InsecureRegistries)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.configPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("writing config: %w", err)
	}

	if err := d.killStale(); err != nil {
		return nil, err
	}

	d.socketPath = filepath.Join(root, socketName)
	if len(d.socketPath) > maxSocketPath {
		dir, err := os.MkdirTemp("", "refit-bk")
		if err != nil {
			return nil, fmt.Errorf("socket directory: %w", err)
		}
		d.socketDir = dir
		d.socketPath = filepath.Join(dir, socketName)
		d.log.Info("state directory too long for a unix socket; using a temporary socket directory", "root", root, "socket", d.socketPath)
	}
	if err := os.Remove(d.socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.removeSocketDir()
		return nil, fmt.Errorf("removing stale socket: %w", err)
	}

	d.logFile, err = os.OpenFile(d.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		d.removeSocketDir()
		return nil, fmt.Errorf("opening daemon log: %w", err)
	}
	return d, nil
}

// killStale kills a buildkitd left running on our root by a crashed refit,
// identified through the pid file and its command line.
func (d *Daemon) killStale() error {
	data, err := os.ReadFile(d.pidPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err == nil && pid > 0 && isOurBuildkitd(pid, d.root) {
		d.log.Warn("killing buildkitd left over from a previous run", "pid", pid)
		// It was started as a group leader; take its children with it.
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		deadline := time.Now().Add(5 * time.Second)
		for processAlive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("stale buildkitd pid %d did not die after SIGKILL", pid)
			}
			time.Sleep(pollInterval / 2)
		}
	}
	if err := os.Remove(d.pidPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale pid file: %w", err)
	}
	return nil
}

// isOurBuildkitd reports whether pid runs buildkitd with --root root.
func isOurBuildkitd(pid int, root string) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(raw) == 0 {
		return false
	}
	args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	if filepath.Base(args[0]) != "buildkitd" {
		return false
	}
	for i, a := range args {
		if a == "--root="+root || (a == "--root" && i+1 < len(args) && args[i+1] == root) {
			return true
		}
	}
	return false
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...; comm may contain spaces and parens.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// Address returns the daemon's BuildKit address, "unix:///.../buildkitd.sock".
// It stays the same across restarts.
func (d *Daemon) Address() string { return "unix://" + d.socketPath }

// PID returns the current buildkitd process id, or 0 while no process is
// running (between a crash and its restart, or after Stop).
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return 0
	}
	return d.cur.pid
}

// Ready waits until the (possibly restarted) daemon lists its workers again.
// It returns an error when ctx ends first or the daemon has been stopped.
func (d *Daemon) Ready(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return errors.New("buildkitd is stopped")
		default:
		}
		d.mu.Lock()
		p, ready := d.cur, d.ready
		d.mu.Unlock()
		// The supervisor's view alone may lag behind a process that was just
		// killed, so also ask the daemon itself.
		if p != nil && ready && d.probe(ctx) == nil && !p.hasExited() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for buildkitd: %w", ctx.Err())
		case <-d.done:
			return errors.New("buildkitd is stopped")
		case <-t.C:
		}
	}
}

// Stop ends supervision, sends SIGTERM to the daemon's process group, waits
// for it to exit and for the supervisor to finish, and removes the socket
// and pid file. If ctx ends first the group gets SIGKILL (Stop still waits
// for the exit, which is then immediate) and the ctx error is returned.
// Stop is idempotent and also the way to wait for a shutdown caused by
// canceling Start's ctx.
func (d *Daemon) Stop(ctx context.Context) error {
	d.cancel()
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
	}
	d.mu.Lock()
	if d.cur != nil {
		d.cur.signal(syscall.SIGKILL)
	}
	d.mu.Unlock()
	<-d.done
	return fmt.Errorf("stopping buildkitd: %w (sent SIGKILL)", ctx.Err())
}

// signal sends sig to the process group led by p, unless p was reaped.
func (p *proc) signal(sig syscall.Signal) {
	if p.hasExited() {
		return
	}
	if err := syscall.Kill(-p.pid, sig); err != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// launch starts one buildkitd process and waits for it to be ready. On
// error the process has been killed and reaped.
func (d *Daemon) launch(ctx context.Context) (*proc, error) {
	if err := os.Remove(d.socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("starting buildkitd %s: removing stale socket: %w", d.binary, err)
	}
	if err := unmountUnder(d.root); err != nil {
		d.log.Warn("cleaning up after the previous buildkitd", "err", err)
	}
	logStart, err := d.logFile.Seek(0, io.SeekEnd)
	if err != nil {
		logStart = 0
	}
	fmt.Fprintf(d.logFile, "--- refit: starting %s at %s ---\n", d.binary, time.Now().Format(time.RFC3339))

	cmd := exec.Command(d.binary,
		"--root", d.root,
		"--addr", d.Address(),
		"--oci-worker=true",
		"--containerd-worker=false",
		"--config", d.configPath,
	)
	cmd.Stdout = d.logFile
	cmd.Stderr = d.logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	startedAt := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting buildkitd %s: %w", d.binary, err)
	}
	p := &proc{pid: cmd.Process.Pid, cmd: cmd, started: startedAt, exited: make(chan struct{})}
	d.mu.Lock()
	d.cur, d.ready = p, false
	d.mu.Unlock()
	d.wg.Add(1)
	go d.reap(p)

	if err := os.WriteFile(d.pidPath, []byte(strconv.Itoa(p.pid)+"\n"), 0o644); err != nil {
		d.log.Warn("writing pid file", "path", d.pidPath, "err", err)
	}
	d.log.Info("started buildkitd", "pid", p.pid, "binary", d.binary, "address", d.Address(), "log", d.logPath)

	if err := d.waitReady(ctx, p); err != nil {
		p.signal(syscall.SIGKILL)
		<-p.exited
		_ = os.Remove(d.pidPath)
		err = fmt.Errorf("starting buildkitd %s: %w", d.binary, err)
		if tail := d.logTail(logStart); tail != "" {
			err = fmt.Errorf("%w\nlast lines of %s:\n%s", err, d.logPath, tail)
		}
		return nil, err
	}
	d.mu.Lock()
	if d.cur == p {
		d.ready = true
	}
	d.mu.Unlock()
	d.log.Info("buildkitd ready", "pid", p.pid, "after", time.Since(startedAt).Round(time.Millisecond))
	return p, nil
}

// reap waits for p to exit, kills what is left of its process group and
// marks the daemon down.
func (d *Daemon) reap(p *proc) {
	defer d.wg.Done()
	err := p.cmd.Wait()
	// Children (runc, build containers) share the group; do not leak them.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	d.mu.Lock()
	p.waitErr = err
	if d.cur == p {
		d.cur, d.ready = nil, false
	}
	d.mu.Unlock()
	close(p.exited)
}

// waitReady polls ListWorkers until it succeeds, p exits, the start timeout
// passes or ctx ends.
func (d *Daemon) waitReady(ctx context.Context, p *proc) error {
	timer := time.NewTimer(d.startTimeout)
	defer timer.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var lastErr error
	for {
		if _, err := os.Stat(d.socketPath); err == nil {
			if lastErr = d.probe(ctx); lastErr == nil {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited during start-up: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("canceled during start-up: %w", ctx.Err())
		case <-timer.C:
			if lastErr == nil {
				return fmt.Errorf("no socket at %s after %s", d.socketPath, d.startTimeout)
			}
			return fmt.Errorf("not answering after %s: %w", d.startTimeout, lastErr)
		case <-tick.C:
		}
	}
}

// probe asks the daemon for its workers once.
func (d *Daemon) probe(ctx context.Context) error { return Probe(ctx, d.Address()) }

// Probe asks the BuildKit daemon at addr (unix://, tcp://,
// docker-container://) for its workers, within 2 s, and returns nil when
// it answers with at least one.
func Probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c, err := client.New(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		return errors.New("no workers")
	}
	return nil
}

// Wait waits until the BuildKit daemon at addr answers (see Probe),
// probing every 100 ms at first and backing off to every 5 s, and returns
// nil then, or an error naming addr and the last probe's error once ctx
// ends. A daemon that is not running yet costs nothing but the probes.
func Wait(ctx context.Context, addr string) error {
	every := pollInterval
	for {
		err := Probe(ctx, addr)
		if err == nil {
			return nil
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("buildkit at %s does not answer: %w", addr, err)
		case <-t.C:
		}
		every = min(every*2, 5*time.Second)
	}
}

// supervise watches p, restarting the daemon when it dies, until ctx ends.
// A nil p (KeepTrying after a failed first start) starts retrying at once.
func (d *Daemon) supervise(ctx context.Context, p *proc) {
	defer close(d.done)
	defer d.cleanup()
	defer d.wg.Wait()
	policy := backoff.Policy{Min: d.backoff, Max: maxRestartBackoff}
	failures := 0
	for {
		if p != nil {
			select {
			case <-ctx.Done():
				d.terminate(p)
				return
			case <-p.exited:
			}
			uptime := time.Since(p.started)
			if uptime >= maxRestartBackoff {
				failures = 0
			}
			d.log.Warn("buildkitd exited; restarting", "pid", p.pid, "err", p.waitErr,
				"uptime", uptime.Round(time.Millisecond), "restart_in", policy.Delay(failures+1))
		}
		for {
			failures++
			t := time.NewTimer(policy.Delay(failures))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			var np *proc
			var err error
			if d.retry != nil {
				np, err = d.attempt(ctx)
			} else {
				np, err = d.launch(ctx)
			}
			if err == nil {
				p = np
				break
			}
			if ctx.Err() != nil {
				return
			}
			d.log.Error("restarting buildkitd", "err", err, "retry_in", policy.Delay(failures+1))
		}
	}
}

// terminate sends SIGTERM to p's group and waits for it to exit, escalating
// to SIGKILL after stopGrace.
func (d *Daemon) terminate(p *proc) {
	d.log.Info("stopping buildkitd", "pid", p.pid)
	p.signal(syscall.SIGTERM)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		d.log.Warn("buildkitd ignored SIGTERM; sending SIGKILL", "pid", p.pid, "after", stopGrace)
		p.signal(syscall.SIGKILL)
		<-p.exited
	}
	d.log.Info("buildkitd stopped", "pid", p.pid)
}

// cleanup removes run-time files once no process is left.
func (d *Daemon) cleanup() {
	if err := unmountUnder(d.root); err != nil {
		d.log.Warn("cleaning up after buildkitd", "err", err)
	}
	_ = os.Remove(d.socketPath)
	_ = os.Remove(d.pidPath)
	d.removeSocketDir()
	if d.logFile != nil {
		_ = d.logFile.Close()
	}
}

func (d *Daemon) removeSocketDir() {
	if d.socketDir != "" {
		_ = os.RemoveAll(d.socketDir)
	}
}

// logTail returns the last logTailLines lines written to the daemon log at
// or after offset.
func (d *Daemon) logTail(offset int64) string {
	f, err := os.Open(d.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, "\n")
}
