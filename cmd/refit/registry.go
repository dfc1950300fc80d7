package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newRegistryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "registry",
		Aliases: []string{"registries"},
		Short:   "Store logins for registries refit pulls bases from and pushes to",
		Long: `refit reaches registries with the logins stored here first, then with the
Docker config (~/.docker/config.json of the user running 'refit serve') and
its credential helpers. Stored passwords are encrypted with the server's
secret key (<data>/secret.key, or --secret-key-file) and never shown again.
They are used for watching base images, resolving them for runs, and for
BuildKit's pulls and pushes.`,
	}
	var username string
	var passwordStdin bool
	login := &cobra.Command{
		Use:   "login HOST -u USER [--password-stdin]",
		Short: "Store a login (user and password or token) for a registry host",
		Example: `  echo "$GHCR_TOKEN" | refit registry login ghcr.io -u robot --password-stdin
  refit registry login registry.acme.internal:5000 -u ci      # prompts`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if username == "" {
				return errors.New("--username (-u) is required")
			}
			password, err := readPassword(cmd, passwordStdin)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			cred, err := c.PutRegistryCredential(cmd.Context(), a[0], username, password)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "login for %s stored (user %s)\n", cred.Host, cred.Username)
			return nil
		},
	}
	login.Flags().StringVarP(&username, "username", "u", "", "user name")
	login.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password or token from stdin (else prompt on a terminal)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List stored logins (hosts and users, never passwords)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			creds, err := c.ListRegistryCredentials(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(creds, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "HOST\tUSER\tUPDATED")
				for _, c := range creds {
					fmt.Fprintf(w, "%s\t%s\t%s\n", c.Host, c.Username, c.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
				}
			})
		},
	}
	logout := &cobra.Command{
		Use:   "logout HOST",
		Short: "Remove the stored login for a registry host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteRegistryCredential(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "login for %s removed\n", a[0])
			return nil
		},
	}
	cmd.AddCommand(login, list, logout)
	return cmd
}

// readPassword reads a password from stdin (fromStdin), or prompts for it
// without echo when stdin is a terminal.
func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(in, 64<<10))
		if err != nil {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", errors.New("no password on stdin")
		}
		return p, nil
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("stdin is not a terminal: pass the password with --password-stdin")
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if len(b) == 0 {
		return "", errors.New("empty password")
	}
	return string(b), nil
}
