package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/audit"
	"github.com/refit-dev/refit/internal/client"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, verify and export the audit log",
		Long: `Every change made through refit (tasks, runs queued and finished, tokens,
registry logins, subscriptions, redeliveries) is recorded in an
append-only audit log, in the same transaction as the change: who (a user,
or "system"), what, to what, when, and the details (old and new values,
the cause, digests; secrets never). Each entry holds the SHA-256 of its
predecessor, so 'refit audit verify' finds any entry altered, deleted or
moved. 'refit audit export' writes the log with a checkpoint signed by the
server, which 'refit audit verify --file' checks offline. README's "For
auditors" section describes the format.`,
	}
	var f client.AuditFilter
	list := &cobra.Command{
		Use:   "list [--since 24h] [--subject S] [--actor U] [--action A]",
		Short: "List audit entries, oldest first (viewer)",
		Example: `  refit audit list --since 24h
  refit audit list --subject api -o json
  refit audit list --action token.create`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			es, err := c.ListAudit(cmd.Context(), f)
			if err != nil {
				return err
			}
			return g.print(es, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "SEQ\tTIME\tACTOR\tACTION\tSUBJECT\tDETAILS")
				for _, e := range es {
					d := string(e.Details)
					if len(d) > 100 {
						d = d[:97] + "..."
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.Subject, d)
				}
			})
		},
	}
	list.Flags().StringVar(&f.Since, "since", "", "only entries at or after this time (RFC 3339) or this long ago (2h, 7d is 168h)")
	list.Flags().StringVar(&f.Subject, "subject", "", "only entries about this subject (task name, user, registry host, subscription)")
	list.Flags().StringVar(&f.Actor, "actor", "", "only entries by this user (or system)")
	list.Flags().StringVar(&f.Action, "action", "", "only this action (task.update, run.queue, token.create…)")
	list.Flags().Int64Var(&f.After, "after", 0, "only entries after this seq (page on with the last seq shown)")
	list.Flags().IntVar(&f.Limit, "limit", 100, "at most this many (1 to 1000)")

	var file, publicKey string
	verify := &cobra.Command{
		Use:   "verify [--file EXPORT [--public-key KEY]]",
		Short: "Check the audit log's hash chain: on the server, or an export file offline",
		Long: `Without --file, the server recomputes every entry's hash from entry 1 and
checks each names its predecessor's hash; it prints how many entries
verified, the last entry's seq and hash (note them: a later verify showing
fewer entries, or another hash at that seq, shows the log was cut or
rewritten) and the server's public key. It exits 1 naming the first
altered, deleted or reordered entry.

With --file, it checks an export offline, without a server: the chain from
entry 1, then the checkpoint on the last line, signed with Ed25519, naming
the last entry (so nothing was cut from the end). --public-key (the key
'refit audit verify' prints, "ed25519:…", or a file holding it) makes it
also check the checkpoint was signed by your server, not by whoever edited
the file.`,
		Example: `  refit audit verify
  refit audit export > audit.jsonl
  refit audit verify --file audit.jsonl --public-key ed25519:3q2+7w…`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
				return verifyFile(g, file, publicKey)
			}
			if publicKey != "" {
				return errors.New("--public-key is for --file: the server's own check needs no key")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			v, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" {
				if err := g.print(v, nil); err != nil {
					return err
				}
			} else if v.OK {
				fmt.Fprintf(g.out, "audit log intact: %d entries, last %d %s\n", v.Entries, v.HeadSeq, v.HeadHash)
				if v.PublicKey != "" {
					fmt.Fprintf(g.out, "exports are signed with %s\n", v.PublicKey)
				}
			}
			if !v.OK {
				return fmt.Errorf("audit log broken at entry %d: %s (%d entries before it verified)", v.Broken.Seq, v.Broken.Reason, v.Entries)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&file, "file", "", "verify this export file (refit audit export) offline; - is stdin")
	verify.Flags().StringVar(&publicKey, "public-key", "", "with --file: the server's key (ed25519:BASE64, or a file holding it) the checkpoint must be signed with")

	var format string
	export := &cobra.Command{
		Use:   "export --format jsonl > audit.jsonl",
		Short: "Write the whole audit log with a signed checkpoint (admin)",
		Long: `Write every audit entry as JSON Lines, oldest first, then one line
{"checkpoint":{"seq","hash","time","publicKey","signature"}}: the last
entry's seq and hash, signed by the server's Ed25519 key. 'refit audit
verify --file' checks such a file offline. If the server finds the chain
broken while exporting it signs nothing, and this command fails naming
the entry.`,
		Example: `  refit audit export --format jsonl > audit-$(date +%F).jsonl`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jsonl" {
				return fmt.Errorf("--format %q: the only format is jsonl", format)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() { done <- copyExport(g.out, pr) }()
			err = c.ExportAudit(cmd.Context(), pw)
			pw.CloseWithError(err)
			if cerr := <-done; err == nil {
				err = cerr
			}
			return err
		},
	}
	export.Flags().StringVar(&format, "format", "jsonl", "output format: jsonl")
	cmd.AddCommand(list, verify, export)
	return cmd
}

// copyExport copies an export to out line by line, and fails on an
// error line (the server found the chain broken) or a missing
// checkpoint, without writing the error line.
func copyExport(out io.Writer, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), audit.MaxLine)
	last := ""
	for sc.Scan() {
		line := sc.Bytes()
		var e api.Error
		if bytes.HasPrefix(line, []byte(`{"error"`)) && json.Unmarshal(line, &e) == nil {
			return fmt.Errorf("export stopped: %s", e.Message)
		}
		if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
			return err
		}
		last = string(line)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the audit export: %w", err)
	}
	if !strings.HasPrefix(last, `{"checkpoint"`) {
		return errors.New("the audit export ended without its checkpoint (cut short)")
	}
	return nil
}

// verifyFile checks an export file offline.
func verifyFile(g *globals, file, publicKey string) error {
	var trusted ed25519.PublicKey
	if publicKey != "" {
		k := publicKey
		if !strings.HasPrefix(k, "ed25519:") {
			if b, err := os.ReadFile(k); err == nil {
				k = strings.TrimSpace(string(b))
			}
		}
		var err error
		if trusted, err = audit.ParsePublicKey(k); err != nil {
			return fmt.Errorf("--public-key: %w", err)
		}
	}
	var in io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("opening the export: %w", err)
		}
		defer f.Close()
		in = f
	}
	res, err := audit.ReadExport(in, trusted, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if g.output == "json" {
		return g.print(res, nil)
	}
	fmt.Fprintf(g.out, "%s intact: %d entries, last %d %s\n", file, res.Entries, res.Head.Seq, res.Head.Hash)
	signer := "signed by " + res.Checkpoint.PublicKey
	if trusted == nil {
		signer += " (not checked against a trusted key: pass --public-key)"
	} else {
		signer += " (the trusted key)"
	}
	fmt.Fprintf(g.out, "checkpoint %s at %s\n", signer, res.Checkpoint.Time.Format("2006-01-02 15:04:05Z07:00"))
	return nil
}
