package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/api"
)

func newSubscriptionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "subscriptions",
		Aliases: []string{"subs"},
		Short:   "Send events to your tooling as signed CloudEvents over HTTP",
		Long: `A subscription delivers every matching event to a URL as a CloudEvents 1.0
JSON document (POST, Content-Type application/cloudevents+json). With a
secret it is signed twice: webhook-signature (Standard Webhooks: HMAC-SHA256
of "webhook-id.webhook-timestamp.body", so replays can be refused) and
X-Refit-Signature-256: sha256=<HMAC-SHA256 of the body>. Deliveries are
retried with backoff until the receiver answers 2xx (Retry-After is
honoured), in order per subject, and dead-lettered after 24 h; 'refit
events redeliver' sends them again.`,
	}
	var req api.SubscriptionRequest
	var types, secretFile string
	create := &cobra.Command{
		Use:   "create --url URL [--types T,...] [--task GLOB] [--base-ref GLOB] [--secret-file FILE]",
		Short: "Subscribe a URL to events",
		Example: `  refit subscriptions create --url https://ci.example/hook --types base.updated,run.succeeded --task 'app-*' --secret-file s.txt
  refit subscriptions create --url http://127.0.0.1:9000/ --base-ref 'docker.io/library/*'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.URL == "" {
				return fmt.Errorf("--url is required")
			}
			if types != "" {
				req.Types = strings.Split(types, ",")
			}
			if secretFile != "" {
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return fmt.Errorf("--secret-file: %w", err)
				}
				req.Secret = strings.TrimSpace(string(b))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			sub, err := c.CreateSubscription(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.print(sub, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "subscription %s created: %s (signed: %t)\n", sub.ID, sub.URL, sub.Signed)
			})
		},
	}
	create.Flags().StringVar(&req.URL, "url", "", "receiver URL (http or https)")
	create.Flags().StringVar(&types, "types", "", "comma-separated event types (base.updated, run.queued, run.started, run.succeeded, run.failed, run.canceled, run.skipped, image.pushed, task.changed, base.diff); default all")
	create.Flags().StringVar(&req.Task, "task", "", "only events of tasks matching this glob")
	create.Flags().StringVar(&req.BaseRef, "base-ref", "", "only base.updated events of references matching this glob")
	create.Flags().StringVar(&secretFile, "secret-file", "", "file holding the HMAC secret (kept out of shell history)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List subscriptions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			subs, err := c.ListSubscriptions(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(subs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tURL\tTYPES\tTASK\tBASE REF\tSIGNED")
				for _, s := range subs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%t\n", s.ID, s.URL, orDash(strings.Join(s.Types, ",")), orDash(s.Task), orDash(s.BaseRef), s.Signed)
				}
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a subscription and its pending deliveries",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteSubscription(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "subscription %s deleted\n", a[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

func newEventsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List, follow and redeliver events",
		Long: `Every state change in refit is an event (see README for the types and
their data): list them, follow them live (Server-Sent Events), see their
deliveries to subscriptions, and send them again.`,
	}
	var f api.EventFilter
	var after int64 // of tail
	list := &cobra.Command{
		Use:   "list",
		Short: "List events, oldest first",
		Example: `  refit events list --type base.updated
  refit events list --subject app --after 120 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			evs, err := c.ListEvents(cmd.Context(), f)
			if err != nil {
				return err
			}
			return g.print(evs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "SEQ\tTIME\tTYPE\tSUBJECT\tID")
				for _, e := range evs {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05"), strings.TrimPrefix(e.Type, api.EventPrefix), e.Subject, e.ID)
				}
			})
		},
	}
	list.Flags().StringVar(&f.Type, "type", "", "only this type (e.g. run.failed)")
	list.Flags().StringVar(&f.Subject, "subject", "", "only this subject (task name or base reference)")
	list.Flags().Int64Var(&f.After, "after", 0, "only events after this sequence number")
	list.Flags().IntVar(&f.Limit, "limit", 100, "at most this many")

	tail := &cobra.Command{
		Use:   "tail",
		Short: "Follow events live (Ctrl-C stops)",
		Example: `  refit events tail
  refit events tail -o json | jq .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return c.Stream(cmd.Context(), after, func(id, typ string, data []byte) error {
				if g.output == "json" {
					_, err := fmt.Fprintf(g.out, "%s\n", data)
					return err
				}
				var ce struct {
					Subject string          `json:"subject"`
					Time    time.Time       `json:"time"`
					Data    json.RawMessage `json:"data"`
				}
				json.Unmarshal(data, &ce)
				_, err := fmt.Fprintf(g.out, "%s  %-6s %-16s %s\n", ce.Time.Local().Format("15:04:05"), id, strings.TrimPrefix(typ, api.EventPrefix), ce.Subject)
				return err
			})
		},
	}
	tail.Flags().Int64Var(&after, "after", -1, "start after this sequence number (default: from now)")

	var sub, state string
	deliveries := &cobra.Command{
		Use:   "deliveries",
		Short: "Show deliveries to subscriptions (pending, delivered, dead)",
		Example: `  refit events deliveries --state dead
  refit events deliveries --subscription s-1a2b3c4d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ds, err := c.ListDeliveries(cmd.Context(), sub, state)
			if err != nil {
				return err
			}
			return g.print(ds, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "SEQ\tSUBSCRIPTION\tTYPE\tSUBJECT\tSTATE\tATTEMPTS\tNEXT\tLAST ERROR")
				for _, d := range ds {
					next := "-"
					if d.State == "pending" {
						next = when(d.NextAttemptAt)
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Event.Seq, d.Subscription, strings.TrimPrefix(d.Event.Type, api.EventPrefix), d.Event.Subject, d.State, d.Attempts, next, orDash(d.LastError))
				}
			})
		},
	}
	deliveries.Flags().StringVar(&sub, "subscription", "", "only this subscription")
	deliveries.Flags().StringVar(&state, "state", "", "only pending, delivered or dead")

	var rr api.RedeliverRequest
	redeliver := &cobra.Command{
		Use:   "redeliver [EVENT-ID] [--since DURATION|RFC3339] [--dead] [--subscription ID]",
		Short: "Send events again (same event id, so receivers can deduplicate)",
		Example: `  refit events redeliver 7f0c…                # one event, to every subscription that got it
  refit events redeliver --dead                 # everything dead-lettered
  refit events redeliver --since 2h --subscription s-1a2b3c4d`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) == 1 {
				rr.ID = a[0]
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			n, err := c.Redeliver(cmd.Context(), rr)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%d deliveries queued again\n", n)
			return nil
		},
	}
	redeliver.Flags().StringVar(&rr.Since, "since", "", "events at or after this time: a duration ago (90m, 2h, 1h30m) or an RFC 3339 time (2026-05-03T10:00:00Z)")
	redeliver.Flags().BoolVar(&rr.Dead, "dead", false, "only dead-lettered deliveries")
	redeliver.Flags().StringVar(&rr.Subscription, "subscription", "", "only this subscription")

	var discardSub string
	var discardDead bool
	discard := &cobra.Command{
		Use:   "discard --dead [EVENT-ID] [--subscription ID]",
		Short: "Delete dead-lettered deliveries you will not redeliver",
		Long: `Dead-lettered deliveries (and their events) are kept until redelivered or
discarded. Discard deletes them; pending deliveries are never deleted. The
events go at the next pruning once no delivery holds them.`,
		Example: `  refit events discard --dead --subscription s-1a2b3c4d
  refit events discard --dead 7f0c…`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if !discardDead {
				return fmt.Errorf("only dead-lettered deliveries can be discarded: say --dead")
			}
			id := ""
			if len(a) == 1 {
				id = a[0]
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			n, err := c.DiscardDead(cmd.Context(), discardSub, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%d dead-lettered deliveries discarded\n", n)
			return nil
		},
	}
	discard.Flags().BoolVar(&discardDead, "dead", false, "dead-lettered deliveries (required)")
	discard.Flags().StringVar(&discardSub, "subscription", "", "only this subscription")

	cmd.AddCommand(list, tail, deliveries, redeliver, discard)
	return cmd
}
