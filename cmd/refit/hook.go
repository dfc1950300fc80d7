package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newHookCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "Set up git push webhooks",
		Long: `Git hosts call refit at /hooks/git/{github,gitlab,gitea,generic} when a
repository is pushed; refit checks each call with the repository's webhook
secret (GitHub, Gitea and generic: an HMAC-SHA256 signature of the body;
GitLab: the X-Gitlab-Token header) and builds the tasks whose source is that
repository and whose triggers.commit matches the push. Secrets are stored
encrypted with the server's secret key and never shown again.`,
	}
	secret := &cobra.Command{Use: "secret", Short: "Store, list and remove git webhook secrets"}
	var fromStdin bool
	var file string
	set := &cobra.Command{
		Use:   "set REPO (--secret-stdin | --secret-file FILE)",
		Short: "Store the webhook secret of a git repository (any URL form: https, ssh, .git)",
		Example: `  openssl rand -hex 32 | tee hook.secret | refit hook secret set https://github.com/acme/api --secret-stdin
  refit hook secret set git@gitlab.com:acme/api.git --secret-file hook.secret`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			s, err := readSecret(cmd, fromStdin, file)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			gs, err := c.PutGitSecret(cmd.Context(), a[0], s)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "webhook secret of %s stored\n", gs.RepoKey)
			return nil
		},
	}
	set.Flags().BoolVar(&fromStdin, "secret-stdin", false, "read the secret from stdin (first line)")
	set.Flags().StringVar(&file, "secret-file", "", "read the secret from this file (first line)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the repositories with a webhook secret (never the secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.ListGitSecrets(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(list, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "REPOSITORY\tSET AS\tUPDATED")
				for _, s := range list {
					fmt.Fprintf(w, "%s\t%s\t%s\n", s.RepoKey, s.Repo, s.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
				}
			})
		},
	}
	remove := &cobra.Command{
		Use:   "remove REPO",
		Short: "Remove the webhook secret of a git repository",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteGitSecret(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "webhook secret of %s removed\n", a[0])
			return nil
		},
	}
	secret.AddCommand(set, list, remove)
	cmd.AddCommand(secret)
	return cmd
}

// readSecret reads a webhook secret from stdin or a file: its first line,
// never echoed.
func readSecret(cmd *cobra.Command, fromStdin bool, file string) (string, error) {
	var raw string
	switch {
	case fromStdin && file != "":
		return "", errors.New("--secret-stdin and --secret-file are exclusive")
	case fromStdin:
		s, err := readPassword(cmd, true)
		if err != nil {
			return "", fmt.Errorf("reading the secret: %w", err)
		}
		raw = s
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading the secret: %w", err)
		}
		raw = string(b)
	default:
		return "", errors.New("pass the secret with --secret-stdin or --secret-file (never on the command line)")
	}
	first, _, _ := strings.Cut(raw, "\n")
	if first = strings.TrimRight(first, "\r"); first == "" {
		return "", errors.New("the secret is empty")
	}
	return first, nil
}
