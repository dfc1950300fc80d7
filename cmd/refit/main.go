// The runtime re-reads the cgroup CPU limit every second to adjust
// GOMAXPROCS: a wake-up a second on an idle server. GOMAXPROCS is still
// set from the limit at start; a limit changed later needs a restart.
//go:debug updatemaxprocs=0

// Command refit keeps container images patched: it builds tasks with
// BuildKit, pushes them, rebuilds them when their base images move, and
// announces every change as a CloudEvent. One binary: `refit serve` is the
// server, every other subcommand is a client of its API.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/refit-dev/refit/internal/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			// The command has said what went wrong; only the status is left.
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "refit:", userMessage(err))
		os.Exit(1)
	}
}

// userMessage is what the CLI prints for err: an unreachable server is
// said once, with what to do, whatever the command was doing.
func userMessage(err error) string {
	var ue *client.UnreachableError
	if errors.As(err, &ue) {
		return fmt.Sprintf("%s\nStart it with 'refit serve', or point --server or REFIT_SERVER at the refit you use.", ue.Error())
	}
	return err.Error()
}

// exitError carries a process exit status (a failed run → 1) for a
// command that has already printed why; main prints nothing more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// globals are the flags every client command shares.
type globals struct {
	server string
	token  string
	output string
	out    io.Writer
}

func newRoot() *cobra.Command {
	g := &globals{out: os.Stdout}
	root := &cobra.Command{
		Use:   "refit",
		Short: "Keep container images patched: build, push and rebuild on base image updates",
		Long: `refit builds container images with BuildKit, pushes them to a registry and
records exactly what each image was built from (commit, base image digests).

Start a server with embedded defaults (SQLite, registry, managed BuildKit):

  refit serve

then, in another shell, define a task and run it:

  export REFIT_TOKEN=$(cat refit-data/admin-token)
  refit task create api --dir $PWD/examples/hello --image api
  refit run api --wait
  refit runs`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.server, "server", "", "refit API URL, or HOST:PORT for http (default $REFIT_SERVER, the config file, or http://127.0.0.1:7300)")
	root.PersistentFlags().StringVar(&g.token, "token", "", "API token (default $REFIT_TOKEN, the config file, or ./refit-data/admin-token)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json (graph: text, dot or json)")
	root.AddCommand(
		newServeCmd(),
		newTaskCmd(g),
		newApplyCmd(g),
		newRunCmd(g),
		newRunsCmd(g),
		newApproveCmd(g),
		newRejectCmd(g),
		newPromoteCmd(g),
		newLogsCmd(g),
		newDockerfileCmd(g),
		newBasesCmd(g),
		newGraphCmd(g),
		newExplainCmd(g),
		newImageCmd(g),
		newSubscriptionsCmd(g),
		newEventsCmd(g),
		newRegistryCmd(g),
		newWatchCmd(g),
		newTokenCmd(g),
		newAuditCmd(g),
		newVulnDBCmd(g),
		newHookCmd(g),
		newVersionCmd(g),
	)
	root.Version = readVersion().String()
	root.SetVersionTemplate("refit {{.Version}}\n")
	return root
}

// clientConfig is the optional file $XDG_CONFIG_HOME/refit/config.yaml.
type clientConfig struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// client resolves the server and token: flags, then environment, then the
// config file, then the local defaults of `refit serve`.
func (g *globals) client() (*client.Client, error) {
	server, token := g.server, g.token
	if server == "" {
		server = os.Getenv("REFIT_SERVER")
	}
	if token == "" {
		token = os.Getenv("REFIT_TOKEN")
	}
	if server == "" || token == "" {
		dir, err := os.UserConfigDir()
		if err == nil {
			if b, err := os.ReadFile(filepath.Join(dir, "refit", "config.yaml")); err == nil {
				var c clientConfig
				if err := yaml.UnmarshalStrict(b, &c); err != nil {
					return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, "refit", "config.yaml"), err)
				}
				if server == "" {
					server = c.Server
				}
				if token == "" {
					token = c.Token
				}
			}
		}
	}
	if server == "" {
		server = "http://127.0.0.1:7300"
	}
	server, err := serverURL(server)
	if err != nil {
		return nil, err
	}
	if token == "" {
		if b, err := os.ReadFile(filepath.Join(defaultDataDir(), "admin-token")); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if token == "" {
		return nil, errors.New("no API token: set REFIT_TOKEN (refit serve wrote one to <data dir>/admin-token)")
	}
	c := client.New(server, token)
	c.OnWarning(func(text string) { fmt.Fprintln(os.Stderr, "Warning:", text) })
	return c, nil
}

// serverURL reads the server's address: a URL (http or https) or, as
// docker and kubectl accept, HOST:PORT, which means http://HOST:PORT.
func serverURL(s string) (string, error) {
	raw := s
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" && strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("refit server %q (--server or REFIT_SERVER): want http://HOST:PORT, https://HOST[:PORT] or HOST:PORT", raw)
	}
	return strings.TrimRight(s, "/"), nil
}

// defaultDataDir is ./refit-data, or $XDG_DATA_HOME/refit when set.
func defaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "refit")
	}
	return "refit-data"
}

// print writes v as JSON with -o json, or calls table otherwise.
func (g *globals) print(v any, table func(w *tabwriter.Writer)) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(g.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		w := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
		table(w)
		return w.Flush()
	}
	return fmt.Errorf("unknown output format %q (want table or json)", g.output)
}
