package lifecycle

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/refit-dev/refit/internal/store"
)

// This file owns the states after a run's build: testing (reported by
// the Executor through Phases), awaiting_approval, promoting, and the
// ends rejected and superseded; the promotion job that moves the promote
// tags; approvals, rejections and rollbacks.

// Tagger moves registry tags (a *regclient.Client): TagDigest reads the
// digest a tag points to ("" when there is none), PutTag points a tag at
// a digest of the same repository — a tag operation, idempotent.
type Tagger interface {
	TagDigest(ctx context.Context, repo, tag string) (string, error)
	PutTag(ctx context.Context, repo, digest, tag string) error
}

// Phases is implemented by the Logs the lifecycle hands its Executor. An
// Executor that tests what it built calls Testing once the image is
// pushed, before the test: the lifecycle records the run as testing
// (and emits run.testing) with what out holds so far.
type Phases interface {
	Testing(ctx context.Context, out Outcome) error
}

// Errors of approvals and rollbacks, for the API to answer with.
var (
	// ErrNotAwaiting: the run is not awaiting approval (it ended, was
	// superseded, or is still building).
	ErrNotAwaiting = errors.New("run is not awaiting approval")
	// ErrSelfApproval: the user caused the run and may not approve it.
	ErrSelfApproval = errors.New("separation of duties")
	// ErrNotPromoted: a rollback named a digest the task never promoted.
	ErrNotPromoted = errors.New("digest was never promoted by the task")
	// ErrNoPromote: the task has no promote section.
	ErrNoPromote = errors.New("task has no promote section")
)

// PromoteArgs is the job that moves a promotion's tags. Repo, Tags and
// Digest are fixed when the job is committed; Key names its rows in the
// promotions table, which make a retried job finish what the first began
// and record it once.
type PromoteArgs struct {
	Key      string   `json:"key"`
	RunID    int64    `json:"run_id"` // the run that built Digest
	Repo     string   `json:"repo"`
	Digest   string   `json:"digest"`
	Tags     []string `json:"tags"`
	By       string   `json:"by"`
	Rollback bool     `json:"rollback,omitempty"`
}

// Kind names the job kind in the queue.
func (PromoteArgs) Kind() string { return "refit.promote" }

// promoteAttempts is how often a promotion job is tried before its run
// fails at step promote.
const promoteAttempts = 10

// runLogs is the Logs an Executor gets: the run's log, and its Phases.
type runLogs struct {
	*logWriter
	l   *Runs
	run store.Run
}

var _ Phases = (*runLogs)(nil)

func (p *runLogs) Testing(ctx context.Context, out Outcome) error {
	r := out.Pushed(p.run)
	r.State = store.StateTesting
	return p.l.inTx(ctx, func(tx *store.Tx) error { return tx.SaveRun(r) })
}

// gate decides what follows a successful build of a task with a promote
// section, in one transaction: superseded when a newer run of the task
// already waits or was promoted; else the task's older runs awaiting
// approval are superseded, and the run waits for approval (its policy
// and cause kind require it) or is promoting (its promotion job
// committed with it). It returns the IDs of runs it ended.
func (l *Runs) gate(ctx context.Context, r store.Run) ([]int64, error) {
	p := r.Spec.Defaults().Promote
	var ended []int64
	err := l.inTx(ctx, func(tx *store.Tx) error {
		ended = ended[:0]
		newer, err := l.newerGated(tx, r)
		if err != nil {
			return err
		}
		if newer != 0 {
			ended = append(ended, r.ID)
			return l.supersede(tx, r, newer)
		}
		waiting, err := tx.RunsInState(r.Task, store.StateAwaitingApproval)
		if err != nil {
			return err
		}
		for _, o := range waiting {
			if o.ID < r.ID {
				ended = append(ended, o.ID)
				if err := l.supersede(tx, o, r.ID); err != nil {
					return err
				}
			}
		}
		needs := p.NeedsApproval(r.Cause.Kind)
		if needs && !*p.ReapproveOnChange {
			last, err := tx.LastPromoted(r.Task)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				if prev, err := tx.GetRun(last.RunID); err == nil && samePlatforms(prev.Platforms, r.Platforms) {
					needs = false // the same images were approved before
				}
			}
		}
		r.FinishedAt = time.Time{}
		if needs {
			r.State = store.StateAwaitingApproval
			return tx.SaveRun(r)
		}
		r.State = store.StatePromoting
		if err := tx.SaveRun(r); err != nil {
			return err
		}
		return l.enqueuePromotion(tx, r, "system")
	})
	return ended, err
}

// newerGated returns a newer run of r's task that awaits approval, is
// promoting, or was promoted (0 if none): r, finishing late, must not
// take its place.
func (l *Runs) newerGated(tx *store.Tx, r store.Run) (int64, error) {
	for _, s := range []store.State{store.StateAwaitingApproval, store.StatePromoting} {
		runs, err := tx.RunsInState(r.Task, s)
		if err != nil {
			return 0, err
		}
		for _, o := range runs {
			if o.ID > r.ID {
				return o.ID, nil
			}
		}
	}
	last, err := tx.LastPromoted(r.Task)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if last.RunID > r.ID && !strings.HasPrefix(last.Key, "rollback:") {
		return last.RunID, nil
	}
	return 0, nil
}

// supersede ends r as superseded by the newer run, and cancels the runs
// that waited for it.
func (l *Runs) supersede(tx *store.Tx, r store.Run, by int64) error {
	r.State = store.StateSuperseded
	r.Step = "promote"
	r.Error = fmt.Sprintf("superseded by %s, a newer run of task %s: it is never promoted", store.FormatRunID(by), r.Task)
	r.FinishedAt = time.Now().UTC()
	if err := tx.SaveRun(r); err != nil {
		return err
	}
	_, err := l.release(tx, r, notBuilt) // never promoted: its waiting runs are canceled
	return err
}

// enqueuePromotion commits the job that promotes run r in tx.
func (l *Runs) enqueuePromotion(tx *store.Tx, r store.Run, by string) error {
	spec := r.Spec.Defaults()
	args := PromoteArgs{Key: runKey(r.ID), RunID: r.ID, Repo: spec.Repository(l.cfg.Registry), Digest: r.Digest,
		Tags: spec.Promote.Tags, By: by}
	return l.insertPromotion(tx, args)
}

func (l *Runs) insertPromotion(tx *store.Tx, args PromoteArgs) error {
	return tx.InsertJob(func(ctx context.Context, sqlTx *sql.Tx) error {
		_, err := l.river.InsertTx(ctx, sqlTx, args, &river.InsertOpts{MaxAttempts: promoteAttempts})
		if err != nil {
			return fmt.Errorf("enqueuing promotion %s: %w", args.Key, err)
		}
		return nil
	})
}

func runKey(id int64) string { return "run:" + store.FormatRunID(id) }

type promoteWorker struct {
	river.WorkerDefaults[PromoteArgs]
	l *Runs
}

// Work moves the promotion's tags: it reads and records each tag's old
// digest (once: a retry finds them recorded), PUTs each tag, and then, in
// one transaction, marks the promotion done (image.promoted, once) and a
// run's promotion succeeded — releasing the runs that waited for it and
// cascading to the tasks built on it. A crash anywhere before that
// transaction leaves the job to be retried, which repeats only the
// idempotent tag writes.
func (w *promoteWorker) Work(ctx context.Context, job *river.Job[PromoteArgs]) error {
	l, a := w.l, job.Args
	log := l.cfg.Logger.With("promotion", a.Key, "run", store.FormatRunID(a.RunID))
	run, err := l.cfg.Store.GetRun(ctx, a.RunID)
	if err != nil {
		return err
	}
	if !a.Rollback && run.State != store.StatePromoting {
		log.Info("run is no longer promoting; nothing to do", "state", run.State)
		return nil
	}
	planned, err := l.moveTags(ctx, a)
	if err != nil {
		if job.Attempt < job.MaxAttempts || a.Rollback {
			log.Warn("promotion failed; retried", "attempt", job.Attempt, "err", err)
			return err
		}
		// The last attempt: the run ends failed at step promote; the
		// tags moved so far stay recorded as planned.
		run.State, run.Step, run.Error = store.StateFailed, "promote", err.Error()
		run.FinishedAt = time.Now().UTC()
		if ferr := l.finish(context.WithoutCancel(ctx), run); ferr != nil && !errors.Is(ferr, store.ErrFinished) {
			return ferr
		}
		l.markEnded(run.ID)
		return nil
	}
	var done bool
	err = l.inTx(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		first, err := tx.CompletePromotions(a.Key, a.Rollback)
		if err != nil || !first {
			return err
		}
		// The tag writes are what the auditor asks about: one entry per
		// promotion, by whoever approved it ("system" for auto).
		tags := map[string]any{}
		for _, p := range planned {
			tags[p.Tag] = map[string]string{"old": p.OldDigest, "new": p.NewDigest}
		}
		if err := tx.Audit(store.AuditRecord{Actor: cmp.Or(a.By, "system"), Action: "image.promote", Subject: run.Task,
			Details: map[string]any{"run": store.FormatRunID(a.RunID), "repository": a.Repo, "digest": a.Digest,
				"tags": tags, "rollback": a.Rollback, "promotion": a.Key}}); err != nil {
			return err
		}
		if a.Rollback {
			return nil
		}
		r, err := tx.GetRun(a.RunID)
		if err != nil || r.State != store.StatePromoting {
			return err
		}
		r.State, r.FinishedAt = store.StateSucceeded, time.Now().UTC()
		done = true
		return l.finishTx(tx, r)
	})
	if err != nil {
		return err
	}
	if done {
		l.markEnded(a.RunID)
		l.reattest(ctx, a.RunID)
	}
	log.Info("promoted", "tags", a.Tags, "digest", a.Digest)
	return nil
}

// moveTags plans the promotion (each tag's old digest, read now) unless a
// previous attempt did, then points every tag at the digest. It returns
// the planned promotion: each tag with its old and new digest.
func (l *Runs) moveTags(ctx context.Context, a PromoteArgs) ([]store.Promotion, error) {
	if l.cfg.Tagger == nil {
		return nil, errors.New("promoting: no registry client configured (lifecycle.Config.Tagger)")
	}
	st := l.cfg.Store
	planned, err := st.PlannedPromotions(ctx, a.Key)
	if err != nil {
		return nil, err
	}
	if len(planned) < len(a.Tags) {
		run, err := st.GetRun(ctx, a.RunID)
		if err != nil {
			return nil, err
		}
		var ps []store.Promotion
		for _, tag := range a.Tags {
			old, err := l.cfg.Tagger.TagDigest(ctx, a.Repo, tag)
			if err != nil {
				return nil, fmt.Errorf("reading tag %s of %s: %w", tag, a.Repo, err)
			}
			ps = append(ps, store.Promotion{Key: a.Key, Task: run.Task, Repository: a.Repo, Tag: tag,
				OldDigest: old, NewDigest: a.Digest, RunID: a.RunID, By: a.By})
		}
		if err := st.PlanPromotions(ctx, ps); err != nil {
			return nil, err
		}
		if planned, err = st.PlannedPromotions(ctx, a.Key); err != nil {
			return nil, err
		}
	}
	for _, p := range planned {
		if !p.DoneAt.IsZero() {
			return planned, nil // completed by an earlier attempt
		}
		if err := l.cfg.Tagger.PutTag(ctx, p.Repository, p.NewDigest, p.Tag); err != nil {
			return nil, fmt.Errorf("pointing %s:%s at %s: %w", p.Repository, p.Tag, p.NewDigest, err)
		}
	}
	return planned, nil
}

// attester attaches a fresh attestation of a pushed run (the runner):
// the image's own record gains each test result, decision and
// promotion.
type attester interface {
	AttestRun(ctx context.Context, run store.Run) error
}

// reattest re-attests run id after a decision on it, when the executor
// attests. A registry that refuses it fails nothing: the log says so.
func (l *Runs) reattest(ctx context.Context, id int64) {
	a, ok := l.cfg.Executor.(attester)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	run, err := l.cfg.Store.GetRun(ctx, id)
	if err == nil {
		err = a.AttestRun(ctx, run)
	}
	if err != nil {
		l.cfg.Logger.Warn("the image's attestation was not updated", "run", store.FormatRunID(id), "err", err)
	}
}

// Decision is a user's approval or rejection of a run.
type Decision struct {
	RunID   int64
	User    string // who decides (the API's caller)
	Comment string
}

// causers returns the users whose action caused a cause: a manual run's
// user, a commit's author (as "name <email>", its name or its email), and
// those of a cascade's upstream cause.
func causers(c store.Cause) []string {
	var out []string
	if c.User != "" {
		out = append(out, c.User)
	}
	if a := strings.TrimSpace(c.Author); a != "" {
		out = append(out, a)
		if name, email, ok := strings.Cut(a, "<"); ok {
			out = append(out, strings.TrimSpace(name), strings.TrimSuffix(strings.TrimSpace(email), ">"))
		}
	}
	if c.Upstream != nil {
		out = append(out, causers(*c.Upstream)...)
	}
	return out
}

// decidable returns the run if it awaits approval, else an error that
// says what it is instead.
func decidable(tx *store.Tx, id int64) (store.Run, error) {
	if err := tx.LockRun(id); err != nil {
		return store.Run{}, err
	}
	r, err := tx.GetRun(id)
	if err != nil {
		return r, err
	}
	switch r.State {
	case store.StateAwaitingApproval:
		return r, nil
	case store.StateSuperseded:
		return r, fmt.Errorf("run %s: %w: %s — decide on the newer run instead", store.FormatRunID(id), ErrNotAwaiting, r.Error)
	default:
		return r, fmt.Errorf("run %s of task %s is %s: %w", store.FormatRunID(id), r.Task, r.State, ErrNotAwaiting)
	}
}

// Approve records d.User's approval of the run's digest (run.approved).
// Once the task's approvers count is reached by distinct users, the run is
// promoting and its promotion job commits in the same transaction. The
// user whose action caused the run cannot approve it (ErrSelfApproval);
// a run not awaiting approval is ErrNotAwaiting (a superseded one says by
// which run); a second approval by one user is store.ErrDuplicate. The
// caller checks the user's role (the task's promote.approvers.role).
func (l *Runs) Approve(ctx context.Context, d Decision) (store.Run, error) {
	var out store.Run
	err := l.inTx(ctx, func(tx *store.Tx) error {
		r, err := decidable(tx, d.RunID)
		if err != nil {
			return err
		}
		if d.User == "" {
			return errors.New("approving needs a user")
		}
		if slices.Contains(causers(r.Cause), d.User) {
			return fmt.Errorf("%w: %s caused run %s (%s run) and cannot approve it; another approver must",
				ErrSelfApproval, d.User, store.FormatRunID(r.ID), r.Cause.Kind)
		}
		if err := tx.AddApproval(store.Approval{RunID: r.ID, User: d.User, Decision: store.DecisionApproved,
			Comment: d.Comment, Digest: r.Digest}); err != nil {
			return err
		}
		all, err := tx.Approvals(r.ID)
		if err != nil {
			return err
		}
		var users []string
		for _, a := range all {
			if a.Decision == store.DecisionApproved && a.Digest == r.Digest {
				users = append(users, a.User)
			}
		}
		need := r.Spec.Defaults().Promote.Approvers.Count
		if err := tx.Audit(store.AuditRecord{Actor: d.User, Action: "run.approve", Subject: store.FormatRunID(r.ID),
			Details: map[string]any{"task": r.Task, "digest": r.Digest, "comment": d.Comment, "approvals": len(users), "needed": need}}); err != nil {
			return err
		}
		if err := tx.Emit(store.EventRunApproved, r.Task, store.RunDecision{Run: store.FormatRunID(r.ID), Task: r.Task,
			Digest: r.Digest, User: d.User, Comment: d.Comment, Approvals: len(users), Needed: need}); err != nil {
			return err
		}
		out = r
		if len(users) < need {
			return nil
		}
		r.State = store.StatePromoting
		if err := tx.SaveRun(r); err != nil {
			return err
		}
		out = r
		return l.enqueuePromotion(tx, r, strings.Join(users, ","))
	})
	if err == nil {
		l.reattest(ctx, out.ID)
	}
	return out, err
}

// Reject ends the run as rejected by d.User (run.rejected): it is never
// promoted, and the runs that waited for it are canceled. A run not
// awaiting approval is ErrNotAwaiting.
func (l *Runs) Reject(ctx context.Context, d Decision) (store.Run, error) {
	var out store.Run
	err := l.inTx(ctx, func(tx *store.Tx) error {
		r, err := decidable(tx, d.RunID)
		if err != nil {
			return err
		}
		if d.User == "" {
			return errors.New("rejecting needs a user")
		}
		if err := tx.AddApproval(store.Approval{RunID: r.ID, User: d.User, Decision: store.DecisionRejected,
			Comment: d.Comment, Digest: r.Digest}); err != nil {
			return err
		}
		if err := tx.Audit(store.AuditRecord{Actor: d.User, Action: "run.reject", Subject: store.FormatRunID(r.ID),
			Details: map[string]any{"task": r.Task, "digest": r.Digest, "comment": d.Comment}}); err != nil {
			return err
		}
		r.State, r.Step = store.StateRejected, "approval"
		r.Error = "rejected by " + d.User
		if d.Comment != "" {
			r.Error += ": " + d.Comment
		}
		r.FinishedAt = time.Now().UTC()
		if err := tx.SaveRun(r); err != nil {
			return err
		}
		out = r
		_, err = l.release(tx, r, notBuilt) // never promoted: its waiting runs are canceled
		return err
	})
	if err == nil {
		l.markEnded(out.ID)
		l.reattest(ctx, out.ID)
	}
	return out, err
}

// Rollback points the task's promote tags back at digest, which the task
// promoted before (else ErrNotPromoted), through a promotion job like a
// run's (image.promoted with rollback true), and waits until it is done
// or ctx ends. It returns the promotion's rows.
func (l *Runs) Rollback(ctx context.Context, taskName, digest, user string) ([]store.Promotion, error) {
	t, err := l.cfg.Store.GetTask(ctx, taskName)
	if err != nil {
		return nil, err
	}
	spec := t.Spec.Defaults()
	if spec.Promote == nil {
		return nil, fmt.Errorf("task %s: %w (add promote.tags to it)", taskName, ErrNoPromote)
	}
	var key string
	err = l.inTx(ctx, func(tx *store.Tx) error {
		p, err := tx.PromotedDigest(taskName, digest)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("task %s never promoted %s: %w; refit promote takes a digest the task promoted before (see the image.promoted events)",
				taskName, digest, ErrNotPromoted)
		}
		if err != nil {
			return err
		}
		if key, err = tx.NextRollbackKey(); err != nil {
			return err
		}
		if err := tx.Audit(store.AuditRecord{Actor: user, Action: "image.rollback", Subject: taskName,
			Details: map[string]any{"repository": p.Repository, "digest": digest, "tags": spec.Promote.Tags, "promotion": key}}); err != nil {
			return err
		}
		return l.insertPromotion(tx, PromoteArgs{Key: key, RunID: p.RunID, Repo: p.Repository, Digest: digest,
			Tags: spec.Promote.Tags, By: user, Rollback: true})
	})
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ps, err := l.cfg.Store.PlannedPromotions(ctx, key)
		if err != nil {
			return nil, err
		}
		if len(ps) > 0 && !ps[0].DoneAt.IsZero() {
			return ps, nil
		}
		select {
		case <-ctx.Done():
			return ps, fmt.Errorf("waiting for rollback %s of task %s: %w", key, taskName, ctx.Err())
		case <-tick.C:
		}
	}
}
