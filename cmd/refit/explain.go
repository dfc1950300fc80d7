package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/regclient"
)

// explainImage prints why the image ref (REPOSITORY@DIGEST) exists: from
// the server's runs when one of them pushed it, else from the image's
// attestation in its registry, verified with the key in publicKeyFile
// or, without one, the server's (when it answers). A story whose
// signature does not verify is printed, marked, and the command fails.
func explainImage(ctx context.Context, g *globals, ref, publicKeyFile string) error {
	if _, _, err := attest.SplitRef(ref); err != nil {
		return err
	}
	c, cerr := g.client()
	if cerr == nil {
		e, err := c.ExplainImage(ctx, ref)
		if err == nil {
			return printImage(g, e)
		}
		var unreachable *client.UnreachableError
		if !client.IsNotFound(err) && !errors.As(err, &unreachable) {
			return err
		}
		if errors.As(err, &unreachable) {
			c = nil
		}
	}
	var pub ed25519.PublicKey
	keyFrom := "--public-key " + publicKeyFile
	switch {
	case publicKeyFile != "":
		b, err := os.ReadFile(publicKeyFile)
		if err != nil {
			return fmt.Errorf("reading --public-key: %w", err)
		}
		if pub, err = attest.ParsePublicKey(b); err != nil {
			return fmt.Errorf("--public-key %s: %w", publicKeyFile, err)
		}
	case cerr == nil && c != nil:
		if k, err := c.SigningKey(ctx); err == nil {
			pub, _ = attest.ParsePublicKey([]byte(k.PublicKey))
			keyFrom = "the server's key (an image built by another refit, or before its key changed, needs --public-key FILE with that server's key)"
		}
	}
	e, err := attest.FromRegistry(ctx, regclient.New(regclient.Config{}), ref, pub)
	if errors.Is(err, attest.ErrNoAttestation) {
		return fmt.Errorf("%s: no run of refit pushed it, and it has no refit attestation in its registry", ref)
	}
	if err != nil {
		return err
	}
	if err := printImage(g, e); err != nil {
		return err
	}
	if pub != nil && !e.Verified {
		return fmt.Errorf("the attestation of %s does not verify with %s, key %s: do not trust this story", ref, keyFrom, attest.KeyID(pub))
	}
	return nil
}

// printImage prints an image's story.
func printImage(g *globals, e api.ImageExplanation) error {
	a := e.Attestation
	return g.print(e, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "image\t%s\n", e.Image)
		switch e.From {
		case "database":
			fmt.Fprintf(w, "told by\trefit's database\n")
		default:
			state := "unverified"
			if e.Verified {
				state = "verified"
			}
			fmt.Fprintf(w, "told by\tthe image's attestation (%s): %s\n", state, e.Verification)
			fmt.Fprintf(w, "attestation\t%s (%s)\n", e.Artifact, e.Via)
		}
		fmt.Fprintf(w, "run\t%s of task %s", a.Run.ID, a.Run.Task)
		if a.Run.State != "" {
			fmt.Fprintf(w, " (%s)", a.Run.State)
		}
		if !a.Run.FinishedAt.IsZero() {
			fmt.Fprintf(w, ", built %s", when(a.Run.FinishedAt))
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "server\t%s\n", orDash(a.Server.ID))
		switch {
		case a.Source.Repo != "":
			fmt.Fprintf(w, "commit\t%s %s (%s)\n", orDash(a.Source.SHA), a.Source.Repo, orDash(a.Source.Ref))
		case a.Source.Dir != "":
			fmt.Fprintf(w, "source\tdirectory %s (no commit)\n", a.Source.Dir)
		}
		for i, l := range a.Cause {
			label := ""
			if i == 0 {
				label = "cause"
			}
			fmt.Fprintf(w, "%s\t%s\n", label, causeLine(l))
		}
		for _, b := range a.Bases {
			fmt.Fprintf(w, "base\t%s %s@%s (stage %s)\n", b.Role, b.Ref, b.Digest, orDash(b.Stage))
		}
		fmt.Fprintf(w, "pushed\t%s@%s\n", a.Image.Repository, a.Image.Digest)
		for _, p := range a.Image.Platforms {
			fmt.Fprintf(w, "platform\t%s %s\n", orDash(p.Platform), p.Digest)
		}
		if t := a.Test; t != nil {
			fmt.Fprintf(w, "test\t%s", t.Result)
			if t.Target != "" {
				fmt.Fprintf(w, ", target %s", t.Target)
			}
			if len(t.Command) > 0 {
				fmt.Fprintf(w, ", command %s (exit %d)", strings.Join(t.Command, " "), t.ExitCode)
			}
			fmt.Fprintln(w)
		}
		for _, ap := range a.Approvals {
			fmt.Fprintf(w, "approval\t%s %s at %s", ap.User, ap.Decision, when(ap.At))
			if ap.Comment != "" {
				fmt.Fprintf(w, ": %q", ap.Comment)
			}
			fmt.Fprintln(w)
		}
		for _, t := range e.TagsNow {
			switch {
			case t.Error != "":
				fmt.Fprintf(w, "tag now\t%s: %s\n", t.Tag, t.Error)
			case t.Here:
				fmt.Fprintf(w, "tag now\t%s → this image\n", t.Tag)
			default:
				fmt.Fprintf(w, "tag now\t%s → %s (moved on)\n", t.Tag, t.Digest)
			}
		}
		if len(e.OtherRuns) > 0 {
			fmt.Fprintf(w, "also pushed by\t%s\n", strings.Join(e.OtherRuns, ", "))
		}
	})
}

// causeLine is one link of a cause chain in words.
func causeLine(l api.CauseLink) string {
	var b strings.Builder
	if l.Run != "" {
		fmt.Fprintf(&b, "%s (%s) ← ", l.Run, l.Task)
	}
	switch l.Kind {
	case "cascade":
		fmt.Fprintf(&b, "cascade of %s", l.UpstreamRun)
		if l.UpstreamTask != "" {
			fmt.Fprintf(&b, " (%s, pushed %s)", l.UpstreamTask, l.UpstreamImage)
		}
	case "base":
		fmt.Fprintf(&b, "base update of %s", l.Base)
		if l.Platform != "" {
			fmt.Fprintf(&b, " [%s]", l.Platform)
		}
		fmt.Fprintf(&b, " from %s to %s", orDash(l.OldDigest), l.NewDigest)
		if !l.ObservedAt.IsZero() {
			fmt.Fprintf(&b, ", observed %s", when(l.ObservedAt))
		}
		if l.Via != "" {
			fmt.Fprintf(&b, " via %s", l.Via)
		}
	case "commit":
		fmt.Fprintf(&b, "commit %s of %s (%s) by %s", l.SHA, l.Repo, l.Ref, orDash(l.Author))
	case "manual":
		fmt.Fprintf(&b, "manual run by %s", orDash(l.User))
	case "schedule":
		fmt.Fprintf(&b, "schedule %s", l.Schedule)
	default:
		b.WriteString(l.Kind)
	}
	return b.String()
}
