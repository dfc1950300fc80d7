package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/task"
)

// EventBaseTagged is emitted when a followed repository gains a tag
// newer than any seen that matches a followed constraint.
const EventBaseTagged = EventPrefix + "base.tagged"

// TagSeen is the newest tag seen for one followed constraint.
type TagSeen struct {
	Tag    string    `json:"tag"`
	Digest string    `json:"digest,omitempty"`
	SeenAt time.Time `json:"seenAt"`
}

// TagRepo is a repository whose version tags are followed: the
// constraints followed (task.RuleKey strings), the newest matching tag
// seen per constraint, and when it is listed next.
type TagRepo struct {
	Repository string             `json:"repository"`
	Rules      []string           `json:"rules"`
	Newest     map[string]TagSeen `json:"newest"`
	AddedAt    time.Time          `json:"addedAt"`
	ListedAt   time.Time          `json:"listedAt,omitzero"`
	NextListAt time.Time          `json:"nextListAt"`
	TagCount   int                `json:"tagCount"`
	Failures   int                `json:"failures,omitempty"`
	LastError  string             `json:"lastError,omitempty"`
	ErrorSince time.Time          `json:"errorSince,omitzero"`
}

// Watch is a reference watched without building: Ref's digest is polled
// like a base (when ByDigest), and with Semver its repository's tags are
// followed.
type Watch struct {
	Ref        string    `json:"ref"`        // normalized; the repository alone when !ByDigest
	Repository string    `json:"repository"` // Ref without tag
	ByDigest   bool      `json:"byDigest"`   // Ref names a tag whose digest is watched
	Semver     string    `json:"semver,omitempty"`
	Prerelease bool      `json:"prerelease,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
}

// Rule is the watch's task.RuleKey, "" without Semver.
func (w Watch) Rule() string {
	if w.Semver == "" {
		return ""
	}
	return task.RuleKey(w.Semver, w.Prerelease)
}

const tagRepoColumns = `repository, rules, newest, added_at, listed_at, next_list_at, tag_count, failures, last_error, error_since`

func scanTagRepo(row scanner) (TagRepo, error) {
	var r TagRepo
	var rules, newest, added, listed, next, since string
	if err := row.Scan(&r.Repository, &rules, &newest, &added, &listed, &next, &r.TagCount, &r.Failures, &r.LastError, &since); err != nil {
		return TagRepo{}, translate(err)
	}
	if err := json.Unmarshal([]byte(rules), &r.Rules); err != nil {
		return TagRepo{}, fmt.Errorf("decoding rules of %s: %w", r.Repository, err)
	}
	if err := json.Unmarshal([]byte(newest), &r.Newest); err != nil {
		return TagRepo{}, fmt.Errorf("decoding newest tags of %s: %w", r.Repository, err)
	}
	if r.Newest == nil {
		r.Newest = map[string]TagSeen{}
	}
	r.AddedAt, r.ListedAt, r.NextListAt, r.ErrorSince = parseTime(added), parseTime(listed), parseTime(next), parseTime(since)
	return r, nil
}

// trackTagRepo adds rules to repository's followed constraints, adding
// the repository (due at once) when it is new.
func trackTagRepo(ctx context.Context, tx queryExecer, repository string, rules []string) error {
	var cur string
	err := tx.QueryRowContext(ctx, `SELECT rules FROM tag_repos WHERE repository = $1`, repository).Scan(&cur)
	if err == sql.ErrNoRows {
		b, _ := json.Marshal(sortedSet(rules))
		now := formatTime(time.Now())
		_, err = tx.ExecContext(ctx, `INSERT INTO tag_repos (repository, rules, added_at, next_list_at) VALUES ($1, $2, $3, $3)`,
			repository, string(b), now)
		if err != nil {
			return translate(err)
		}
		markRefsDue(tx) // listed at once: wake the watcher at commit
		return nil
	}
	if err != nil {
		return translate(err)
	}
	var have []string
	if err := json.Unmarshal([]byte(cur), &have); err != nil {
		return fmt.Errorf("decoding rules of %s: %w", repository, err)
	}
	merged := sortedSet(append(slices.Clone(have), rules...))
	if slices.Equal(merged, have) {
		return nil
	}
	b, _ := json.Marshal(merged)
	_, err = tx.ExecContext(ctx, `UPDATE tag_repos SET rules = $1 WHERE repository = $2`, string(b), repository)
	return translate(err)
}

// trackTaskTags follows the repositories of a task's triggers.baseTags.
func trackTaskTags(ctx context.Context, tx queryExecer, s task.Spec) error {
	if s.Triggers == nil {
		return nil
	}
	for _, bt := range s.Triggers.BaseTags {
		repo, err := task.Repository(bt.Ref)
		if err != nil {
			continue // validated before it is stored
		}
		if err := trackTagRepo(ctx, tx, repo, []string{task.RuleKey(bt.Semver, bt.Prerelease)}); err != nil {
			return fmt.Errorf("following tags of %s: %w", repo, err)
		}
	}
	return nil
}

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	s = slices.Compact(s)
	if s == nil {
		s = []string{}
	}
	return s
}

// SyncTagRepos makes the followed repositories exactly follow (repository
// → its constraints): new ones are added, due at once; the constraints of
// known ones replaced (the newest tags seen are kept for those still
// followed); the rest removed. It returns how many were removed.
func (s *Store) SyncTagRepos(ctx context.Context, follow map[string][]string) (removed int, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT repository, rules, newest FROM tag_repos`)
		if err != nil {
			return translate(err)
		}
		type row struct{ repo, rules, newest string }
		var have []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.repo, &r.rules, &r.newest); err != nil {
				rows.Close()
				return translate(err)
			}
			have = append(have, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return translate(err)
		}
		known := map[string]bool{}
		for _, r := range have {
			known[r.repo] = true
			rules, ok := follow[r.repo]
			if !ok {
				if _, err := tx.ExecContext(ctx, `DELETE FROM tag_repos WHERE repository = $1`, r.repo); err != nil {
					return translate(err)
				}
				removed++
				continue
			}
			want := sortedSet(rules)
			b, _ := json.Marshal(want)
			var newest map[string]TagSeen
			_ = json.Unmarshal([]byte(r.newest), &newest)
			for k := range newest {
				if !slices.Contains(want, k) {
					delete(newest, k)
				}
			}
			nb, _ := json.Marshal(nonNilMap(newest))
			if string(b) == r.rules && string(nb) == r.newest {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE tag_repos SET rules = $1, newest = $2 WHERE repository = $3`, string(b), string(nb), r.repo); err != nil {
				return translate(err)
			}
		}
		for repo, rules := range follow {
			if !known[repo] {
				if err := trackTagRepo(ctx, tx, repo, rules); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("syncing followed tag repositories: %w", err)
	}
	return removed, nil
}

func nonNilMap(m map[string]TagSeen) map[string]TagSeen {
	if m == nil {
		return map[string]TagSeen{}
	}
	return m
}

// DueTagRepos returns up to limit followed repositories due for a
// listing at now, most overdue first.
func (s *Store) DueTagRepos(ctx context.Context, now time.Time, limit int) ([]TagRepo, error) {
	return s.queryTagRepos(ctx, `SELECT `+tagRepoColumns+` FROM tag_repos WHERE next_list_at <= $1 ORDER BY next_list_at LIMIT $2`,
		formatTime(now), limit)
}

// ListTagRepos returns every followed repository, by name.
func (s *Store) ListTagRepos(ctx context.Context) ([]TagRepo, error) {
	return s.queryTagRepos(ctx, `SELECT `+tagRepoColumns+` FROM tag_repos ORDER BY repository`)
}

func (s *Store) queryTagRepos(ctx context.Context, q string, args ...any) ([]TagRepo, error) {
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing followed tag repositories: %w", translate(err))
	}
	defer rows.Close()
	var out []TagRepo
	for rows.Next() {
		r, err := scanTagRepo(rows)
		if err != nil {
			return nil, fmt.Errorf("listing followed tag repositories: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RecordTagListError notes a failed listing of repository and when to
// try again.
func (s *Store) RecordTagListError(ctx context.Context, repository, msg string, next time.Time) error {
	now := formatTime(time.Now())
	_, err := s.write.ExecContext(ctx, `UPDATE tag_repos SET listed_at = $1, failures = failures + 1, last_error = $2,
		error_since = CASE WHEN error_since = '' THEN $1 ELSE error_since END, next_list_at = $3 WHERE repository = $4`,
		now, msg, formatTime(next), repository)
	if err != nil {
		return fmt.Errorf("recording listing error of %s: %w", repository, translate(err))
	}
	return nil
}

// TagRepo returns a followed repository, or ErrNotFound.
func (t *Tx) TagRepo(repository string) (TagRepo, error) {
	r, err := scanTagRepo(t.tx.QueryRowContext(t.ctx, `SELECT `+tagRepoColumns+` FROM tag_repos WHERE repository = $1`, repository))
	if err != nil {
		return TagRepo{}, fmt.Errorf("followed repository %s: %w", repository, err)
	}
	return r, nil
}

// SaveTagList records a successful listing: the newest tags per
// constraint, how many tags there were, and when to list next. It clears
// the error state.
func (t *Tx) SaveTagList(r TagRepo) error {
	newest, err := json.Marshal(nonNilMap(r.Newest))
	if err != nil {
		return err
	}
	_, err = t.tx.ExecContext(t.ctx, `UPDATE tag_repos SET newest = $1, tag_count = $2, listed_at = $3, next_list_at = $4,
		failures = 0, last_error = '', error_since = '' WHERE repository = $5`,
		string(newest), r.TagCount, formatTime(time.Now()), formatTime(r.NextListAt), r.Repository)
	if err != nil {
		return fmt.Errorf("saving listing of %s: %w", r.Repository, translate(err))
	}
	return nil
}

// TrackRef adds a reference to the base index (left alone when it is
// there), due for a check at once.
func (t *Tx) TrackRef(ref string) error {
	if err := trackRef(t.ctx, t.tx, ref, formatTime(time.Now())); err != nil {
		return fmt.Errorf("tracking %s: %w", ref, err)
	}
	return nil
}

// SetTaskTagArg records that the task's build argument arg is now value,
// the newest tag of repository a baseTags rebuild followed: every run
// created for the task from now on builds with it (see CreateRun).
func (t *Tx) SetTaskTagArg(taskName, arg, value, repository string) error {
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO task_tag_args (task_name, arg, value, repository, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (task_name, arg) DO UPDATE SET value = excluded.value, repository = excluded.repository, updated_at = excluded.updated_at`,
		taskName, arg, value, repository, formatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("setting %s of task %s: %w", arg, taskName, translate(err))
	}
	return appendAudit(t.ctx, t.tx, AuditRecord{Actor: "system", Action: "task.tagarg", Subject: taskName, Details: map[string]any{
		"arg": arg, "tag": value, "repository": repository}})
}

// TaskTagArgs returns the build arguments baseTags set for a task (arg →
// tag); nil when none.
func (s *Store) TaskTagArgs(ctx context.Context, taskName string) (map[string]string, error) {
	return taskTagArgs(ctx, s.read, taskName)
}

func taskTagArgs(ctx context.Context, db querier, taskName string) (map[string]string, error) {
	rows, err := queryPrepared(ctx, db, tagArgsSQL, taskName)
	if err != nil {
		return nil, fmt.Errorf("reading tag arguments of task %s: %w", taskName, translate(err))
	}
	defer rows.Close()
	var out map[string]string
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("reading tag arguments of task %s: %w", taskName, translate(err))
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, rows.Err()
}

// PutWatch stores a watch (replacing one of the same Ref) and, in the
// same transaction, tracks what it watches: Ref in the base index when
// ByDigest, its repository's tags with Semver. It reports whether it was
// new.
func (s *Store) PutWatch(ctx context.Context, w Watch) (created bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		created, err = putWatch(ctx, tx, w)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("storing watch %s: %w", w.Ref, err)
	}
	return created, nil
}

func putWatch(ctx context.Context, tx queryExecer, w Watch) (bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM watches WHERE ref = $1`, w.Ref).Scan(&n); err != nil {
		return false, translate(err)
	}
	if w.CreatedAt.IsZero() {
		w.CreatedAt = time.Now()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO watches (ref, repository, by_digest, semver, prerelease, created_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (ref) DO UPDATE SET repository = excluded.repository, by_digest = excluded.by_digest, semver = excluded.semver, prerelease = excluded.prerelease`,
		w.Ref, w.Repository, boolInt(w.ByDigest), w.Semver, boolInt(w.Prerelease), formatTime(w.CreatedAt))
	if err != nil {
		return false, translate(err)
	}
	if w.ByDigest {
		if err := trackRef(ctx, tx, w.Ref, formatTime(time.Now())); err != nil {
			return false, err
		}
	}
	if rule := w.Rule(); rule != "" {
		if err := trackTagRepo(ctx, tx, w.Repository, []string{rule}); err != nil {
			return false, err
		}
	}
	err = appendAudit(ctx, tx, AuditRecord{Action: "watch.set", Subject: w.Ref, Details: map[string]any{
		"semver": w.Semver, "prerelease": w.Prerelease, "byDigest": w.ByDigest}})
	return n == 0, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ListWatches returns every watch, by reference.
func (s *Store) ListWatches(ctx context.Context) ([]Watch, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT ref, repository, by_digest, semver, prerelease, created_at FROM watches ORDER BY ref`)
	if err != nil {
		return nil, fmt.Errorf("listing watches: %w", translate(err))
	}
	defer rows.Close()
	var out []Watch
	for rows.Next() {
		var w Watch
		var byDigest, pre int
		var created string
		if err := rows.Scan(&w.Ref, &w.Repository, &byDigest, &w.Semver, &pre, &created); err != nil {
			return nil, fmt.Errorf("listing watches: %w", translate(err))
		}
		w.ByDigest, w.Prerelease, w.CreatedAt = byDigest != 0, pre != 0, parseTime(created)
		out = append(out, w)
	}
	return out, rows.Err()
}

// DeleteWatch removes a watch, or returns ErrNotFound. What it tracked
// is retired by the watcher's next sync when nothing else uses it.
func (s *Store) DeleteWatch(ctx context.Context, ref string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM watches WHERE ref = $1`, ref)
		if err != nil {
			return translate(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "watch.delete", Subject: ref})
	})
	if err != nil {
		return fmt.Errorf("watch %s: %w", ref, err)
	}
	return nil
}

// repositoryOf is a normalized reference without its tag and digest.
func repositoryOf(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}
