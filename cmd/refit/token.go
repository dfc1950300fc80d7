package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "token",
		Aliases: []string{"tokens"},
		Short:   "Manage API tokens: who may call refit, with which roles (admin only)",
		Long: `Every API token belongs to a user and carries roles:

  viewer    read: tasks, runs, logs, bases, events, the audit log
  operator  change tasks, queue runs, apply, registry logins, subscriptions
  approver  approve or reject runs awaiting approval
  admin     everything, including tokens and the audit export

Admin implies every role and every role may read. The user is what the
audit log records as the actor of what the token does. Managing tokens
needs the admin role; refit serve created the first admin token
(<data>/admin-token, user "admin").`,
	}
	var user string
	var roles []string
	create := &cobra.Command{
		Use:   "create --user USER --role ROLE [--role ROLE]",
		Short: "Create a token and print its secret, this once",
		Example: `  refit token create --user alice --role approver
  refit token create --user ci --role operator -o json | jq -r .secret > ci.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" {
				return errors.New("--user is required")
			}
			if len(roles) == 0 {
				return errors.New("--role is required (viewer, operator, approver or admin; repeat it for several)")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), user, roles)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(t, nil)
			}
			fmt.Fprintf(g.out, "token %s for user %s (%s); its secret, shown this once:\n%s\n", t.ID, t.User, strings.Join(t.Roles, ", "), t.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&user, "user", "", "the user the token authenticates (letters, digits, . _ @ + -)")
	create.Flags().StringArrayVar(&roles, "role", nil, "a role: viewer, operator, approver or admin (repeatable)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens, revoked ones too (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(ts, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tUSER\tROLES\tCREATED\tBY\tREVOKED")
				for _, t := range ts {
					revoked := "-"
					if !t.RevokedAt.IsZero() {
						revoked = t.RevokedAt.Local().Format("2006-01-02 15:04:05")
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.User, strings.Join(t.Roles, ","),
						t.CreatedAt.Local().Format("2006-01-02 15:04:05"), orDash(t.CreatedBy), revoked)
				}
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID|USER",
		Short: "Revoke a token by ID, or every active token of a user",
		Long: `Revoke a token by its ID (refit token list), or every active token of a
user by name. A revoked token is refused at once and stays listed, for the
record. The last active admin token cannot be revoked: create another
admin token first.`,
		Example: `  refit token revoke t-3f9a0c2b1d4e
  refit token revoke alice`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.RevokeTokens(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			return g.print(ts, func(w *tabwriter.Writer) {
				for _, t := range ts {
					fmt.Fprintf(w, "revoked token %s of user %s\n", t.ID, t.User)
				}
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
