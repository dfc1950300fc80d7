package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/task"
)

func newTaskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Create, list, show and delete build tasks; show what triggers them",
		Long: `A task says what to build (a Dockerfile in a git repository or a local
directory), where to push it and when. Create tasks one at a time here, or
declaratively with 'refit apply -f tasks.yaml'.`,
	}
	cmd.AddCommand(newTaskCreateCmd(g), newTaskListCmd(g), newTaskShowCmd(g), newTaskDeleteCmd(g))
	cmd.AddCommand(newTaskTriggersCmd(g))
	return cmd
}

func newTaskCreateCmd(g *globals) *cobra.Command {
	var (
		s        api.TaskSpec
		git, dir string
		args     []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME (--git URL[#REF] | --dir PATH)",
		Short: "Create a task",
		Long: `Create a task. The server checks the source and parses the Dockerfile; a
missing Dockerfile or a syntax error is reported with its file and line. A
base image that cannot be found is not an error (a registry may be down, the
image pushed later): the task is created and a warning printed on stderr.
A task of that name that exists already is left as it is: change it with
'refit apply -f FILE', or delete it first.

Images named without a registry host (--image api) go to refit's embedded
registry. Tags are templates: {{.Run.ID}}, {{.Commit.Short}}, {{.Commit.SHA}},
{{.Task.Name}}; default "latest". Every image is also pushed by digest.`,
		Example: `  refit task create api --git https://git.example/api.git#main --image api
  refit task create hello --dir $PWD/examples/hello --tag latest --tag '{{.Run.ID}}'
  refit task create web --git ./web --dockerfile build/Dockerfile --target prod --build-arg GO=1.23`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			s.Name = a[0]
			if git != "" {
				s.Source.Git, s.Source.Ref = splitRef(git)
				if !strings.Contains(s.Source.Git, "://") && !strings.Contains(s.Source.Git, "@") {
					if abs, err := filepath.Abs(s.Source.Git); err == nil {
						if _, err := os.Stat(abs); err == nil {
							s.Source.Git = abs
						}
					}
				}
			}
			if dir != "" {
				abs, err := filepath.Abs(dir)
				if err != nil {
					return fmt.Errorf("--dir %s: %w", dir, err)
				}
				s.Source.Dir = abs
			}
			var err error
			if s.BuildArgs, err = parseKV("--build-arg", args); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.CreateTask(cmd.Context(), s)
			if client.IsStatus(err, http.StatusConflict) {
				return fmt.Errorf("task %s already exists: change it with 'refit apply -f FILE', or delete it first ('refit task delete %s')", s.Name, s.Name)
			}
			if err != nil {
				return serverSaid(err, "creating task %s", s.Name)
			}
			return g.print(t, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "task %s created: %s → %s\n", t.Name(), sourceString(t.Spec), t.Spec.Image)
				printBases(w, t)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&git, "git", "", "git repository URL, optionally with #ref (branch, tag or commit)")
	f.StringVar(&dir, "dir", "", "local directory on the server's machine (development)")
	f.StringVar(&s.Context, "context", "", "build context inside the source (default .)")
	f.StringVarP(&s.Dockerfile, "dockerfile", "f", "", "Dockerfile path inside the context (default Dockerfile)")
	f.StringArrayVar(&args, "build-arg", nil, "build argument KEY=VALUE (repeatable)")
	f.StringVar(&s.Target, "target", "", "stage to build (default: the last)")
	f.StringSliceVar(&s.Platforms, "platform", nil, "platforms to build (default: the host's)")
	f.StringVar(&s.Image, "image", "", "image repository (default: the task name, in the embedded registry)")
	f.StringArrayVar(&s.Tags, "tag", nil, "tag template (repeatable; default latest)")
	return cmd
}

// serverSaid returns err as it is when it is the server's answer, which
// names the task already ("task helo does not exist"), and otherwise
// says what was being done.
func serverSaid(err error, doing string, args ...any) error {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf(doing+": %w", append(args, err)...)
}

func splitRef(s string) (url, ref string) {
	if i := strings.LastIndex(s, "#"); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func parseKV(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

func sourceString(s api.TaskSpec) string {
	if s.Source.Git != "" {
		return s.Source.Git + "#" + s.Source.Ref
	}
	return s.Source.Dir
}

func printBases(w *tabwriter.Writer, t api.Task) {
	if len(t.Bases) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSTAGE\tROLE\tREFERENCE")
	for _, b := range t.Bases {
		fmt.Fprintf(w, "%s\t%s\t%s\n", b.Stage, b.Role, b.Ref)
	}
}

func newTaskListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List tasks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.ListTasks(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(ts, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tSOURCE\tIMAGE\tRUNTIME BASE")
				for _, t := range ts {
					rt := "-"
					for _, b := range t.Bases {
						if b.Role == "runtime" {
							rt = b.Ref
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Name(), sourceString(t.Spec), t.Spec.Image, rt)
				}
			})
		},
	}
}

func newTaskShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a task's definition and its base images",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.GetTask(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			return g.print(t, func(w *tabwriter.Writer) {
				s := t.Spec
				fmt.Fprintf(w, "name\t%s\n", s.Name)
				fmt.Fprintf(w, "source\t%s\n", sourceString(s))
				fmt.Fprintf(w, "dockerfile\t%s\n", filepath.Join(s.Context, s.Dockerfile))
				if s.Target != "" {
					fmt.Fprintf(w, "target\t%s\n", s.Target)
				}
				for k, v := range s.BuildArgs {
					fmt.Fprintf(w, "build-arg\t%s=%s\n", k, v)
				}
				fmt.Fprintf(w, "platforms\t%s\n", strings.Join(s.Platforms, ", "))
				fmt.Fprintf(w, "image\t%s\n", s.Image)
				fmt.Fprintf(w, "tags\t%s\n", strings.Join(s.Tags, ", "))
				if tr := s.Triggers; tr != nil {
					fmt.Fprintf(w, "triggers\tcommit=%s base=%t (scope %s, %s) manual=%t schedule=%s\n", tr.Commit, tr.Base, tr.BaseScope, tr.Patch, tr.Manual, scheduleString(tr.Schedule))
					for _, bt := range tr.BaseTags {
						fmt.Fprintf(w, "base-tags\t%s\n", baseTagString(bt, t.TagArgs))
					}
				}
				fmt.Fprintf(w, "updated\t%s\n", t.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
				printBases(w, t)
			})
		},
	}
}

func newTaskDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete tasks (their runs stay in the record)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, name := range a {
				if err := c.DeleteTask(cmd.Context(), name); err != nil {
					return serverSaid(err, "deleting task %s", name)
				}
				fmt.Fprintf(g.out, "task %s deleted\n", name)
			}
			return nil
		},
	}
}

func newApplyCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update tasks from a YAML file (idempotent)",
		Long: `Create or update every task in a YAML file: documents separated by '---',
or one document with a 'tasks:' list. Fields are those of the API (see
README); unknown fields are errors. Applying the same file twice changes
nothing. Relative source.dir paths are taken relative to the file.

All or nothing: the server checks every task first, as 'task create' does
(fields, source, Dockerfile, dependency cycles), then stores them in one
transaction. If any task is refused, none is stored, and every refusal is
listed.

A task whose spec and Dockerfile are as at its last apply is 'unchanged':
it is not checked again and nothing of it is written. A git source on a
branch or tag is checked every time (the branch may have moved). A file
holds at most 32 MiB of tasks.`,
		Example: `  refit apply -f tasks.yaml

  # tasks.yaml
  name: api
  source:
    git: https://git.example/api.git
    ref: main
  image: api
  tags: ["latest", "{{.Commit.Short}}"]
  ---
  name: hello
  source:
    dir: ./examples/hello`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f FILE is required")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			f, err := task.DecodeFile(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			specs := f.Tasks
			for i, s := range specs {
				if s.Source.Dir != "" && !filepath.IsAbs(s.Source.Dir) {
					specs[i].Source.Dir = filepath.Join(filepath.Dir(mustAbs(file)), s.Source.Dir)
				}
			}
			wire, err := wireSpecs(specs)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			req := api.ApplyRequest{Tasks: wire}
			for _, w := range f.Watches {
				req.Watches = append(req.Watches, api.WatchRequest{Ref: w.Ref, Semver: w.Semver, Prerelease: w.Prerelease})
			}
			res, err := c.Apply(cmd.Context(), req)
			if err != nil {
				return applyError(file, len(specs), err)
			}
			if len(res.Watches) == 0 {
				return g.print(res.Tasks, func(w *tabwriter.Writer) {
					for _, r := range res.Tasks {
						fmt.Fprintf(w, "task %s %s\n", r.Name, r.Action)
					}
				})
			}
			return g.print(res, func(w *tabwriter.Writer) {
				for _, r := range res.Tasks {
					fmt.Fprintf(w, "task %s %s\n", r.Name, r.Action)
				}
				for _, r := range res.Watches {
					fmt.Fprintf(w, "watch %s %s\n", r.Ref, r.Action)
				}
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "YAML file of tasks")
	return cmd
}

// applyError says which tasks of file the server refused, every one.
func applyError(file string, n int, err error) error {
	var ae *client.APIError
	if !errors.As(err, &ae) || len(ae.Errors) == 0 {
		return fmt.Errorf("%s: %w", file, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d of %d tasks refused, nothing applied:", file, len(ae.Errors), n)
	for _, e := range ae.Errors {
		name := e.Task
		if name == "" {
			name = fmt.Sprintf("#%d", e.Index+1)
		}
		fmt.Fprintf(&b, "\n  task %s: %s", name, e.Error)
	}
	return errors.New(b.String())
}

// wireSpecs turns specs read by task's strict decoder into the wire type.
// Both have the same JSON (internal/server's tests hold them equal), so the
// conversion is that JSON, decoded strictly: a field one of them lacks
// fails here rather than vanishing on the way to the server.
func wireSpecs(specs []task.Spec) ([]api.TaskSpec, error) {
	b, err := json.Marshal(specs)
	if err != nil {
		return nil, fmt.Errorf("encoding tasks: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out []api.TaskSpec
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("encoding tasks for the API: %w", err)
	}
	return out, nil
}

func mustAbs(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return abs
}

// baseTagString renders a baseTags entry and, for a rebuild, the tag its
// arg carries now: "docker.io/library/python ~3.12 → PYTHON_TAG (rebuild;
// now 3.12.9)".
func baseTagString(bt api.BaseTag, tagArgs map[string]string) string {
	action := cmp.Or(bt.Action, "rebuild")
	s := bt.Ref + " " + bt.Semver
	if bt.Prerelease {
		s += " (+prerelease)"
	}
	if bt.Arg != "" {
		s += " → " + bt.Arg
	}
	s += " (" + action
	if v, ok := tagArgs[bt.Arg]; ok && action == "rebuild" {
		s += "; now " + v
	}
	return s + ")"
}

// scheduleString renders a task's schedules on one line: `weekly "0 3 *
// * 1" Europe/Berlin, …`, or "none".
func scheduleString(list []api.Schedule) string {
	if len(list) == 0 {
		return "none"
	}
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = fmt.Sprintf("%s %q %s", s.Name, s.Cron, s.Timezone)
	}
	return strings.Join(parts, ", ")
}
