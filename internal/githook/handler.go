package githook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/refit-dev/refit/internal/httpbody"
	"github.com/refit-dev/refit/internal/redact"
)

// DefaultMaxBody is the request body limit when [Config.MaxBody] is not
// positive: 1 MiB.
const DefaultMaxBody int64 = 1 << 20

// Route is the path prefix [Handler] expects to be mounted at.
const Route = "/hooks/git/"

// Verdict is what accepting a push did, for the host's delivery log.
type Verdict struct {
	// Runs are the runs queued or joined, as users write them ("r-7").
	Runs []string `json:"runs,omitempty"`
	// Replay is true when the delivery was seen before (nothing new
	// happened).
	Replay bool `json:"replay,omitempty"`
	// Message says what happened, e.g. "no task builds repository X".
	Message string `json:"message"`
}

// Config configures [Handler].
type Config struct {
	// Secret returns the webhook secret set for one of repos (the URLs the
	// payload names) and which of them it is, and ok=false when none has
	// one. Only that repository is then handed to Accept: a secret
	// vouches for its own repository, never for another URL the payload
	// names. Required.
	Secret func(ctx context.Context, repos []string) (repo, secret string, ok bool, err error)
	// Accept is called with an authenticated push. It must commit what the
	// push causes, idempotently on Push.Delivery, before returning: hosts
	// redeliver. An error yields 500 (the host retries). Required.
	Accept func(ctx context.Context, p Push) (Verdict, error)
	// MaxBody bounds a request body in bytes; larger bodies get 413.
	// Zero or negative means DefaultMaxBody.
	MaxBody int64
	// Record, when set, is told the outcome of each push delivery: the
	// 202 with its verdict, a 500, and a 400 or 401 of a payload that
	// names repositories. Refused deliveries are unauthenticated
	// (Delivery.Authenticated false): Record must keep one only for a
	// repository it already knows, so a caller cannot make it grow.
	// Optional.
	Record func(ctx context.Context, d Delivery)
	// Logger gets one record per request outcome; secrets and bodies are
	// never logged. Nil discards.
	Logger *slog.Logger
}

// Delivery is the outcome of one push delivery, for [Config.Record]:
// never the body or a secret.
type Delivery struct {
	Format Format
	// Repos are the repositories: the one whose secret verified when
	// Authenticated, else every URL the payload names.
	Repos         []string
	Authenticated bool
	// Delivery, Ref and SHA are the push's, as far as it could be read.
	Delivery, Ref, SHA string
	// Status is the HTTP status answered.
	Status int
	// Message is the verdict or the refusal, in words.
	Message string
	// Runs are the runs queued or joined ("r-7").
	Runs []string
}

type handler struct {
	cfg Config
}

// Handler returns the handler for POST /hooks/git/{format}; mount it at
// [Route] (or on a pattern with a {format} wildcard).
//
// Per request, in this order, it answers: 404 for an unknown format; 405
// for a method other than POST; 413 for a body over MaxBody; 400 for a
// payload it cannot read (no repository, ref or commit), since without
// the repository there is no secret to check; 401 when no secret is set
// for the repository or the signature (token, for GitLab) does not match
// — nothing else happens; 200 {"message":"pong"} for GitHub's ping and
// 200 for other non-push events; 500 when Accept fails; else 202 with the
// [Verdict] (which says when no task uses the repository, no task follows
// the branch, or the delivery was a replay). Before a 202, 500, 401 or
// 400 (of a payload naming repositories) is written, the outcome is handed
// to Config.Record.
//
// Handler panics if Secret or Accept is nil.
func Handler(cfg Config) http.Handler {
	if cfg.Secret == nil || cfg.Accept == nil {
		panic("githook: Config.Secret and Config.Accept are required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &handler{cfg: cfg}
}

func formatOf(r *http.Request) Format {
	if v := r.PathValue("format"); v != "" {
		return Format(v)
	}
	p := strings.TrimPrefix(r.URL.Path, Route)
	return Format(strings.Trim(p, "/"))
}

// headers of one format: the event, the delivery id and how it signs.
func headers(f Format, h http.Header) (event, delivery string) {
	switch f {
	case FormatGitHub:
		return h.Get("X-GitHub-Event"), h.Get("X-GitHub-Delivery")
	case FormatGitLab:
		d := h.Get("X-Gitlab-Event-UUID")
		if d == "" {
			d = h.Get("Idempotency-Key")
		}
		return h.Get("X-Gitlab-Event"), d
	case FormatGitea:
		ev, d := h.Get("X-Gitea-Event"), h.Get("X-Gitea-Delivery")
		if ev == "" {
			ev = h.Get("X-Forgejo-Event")
		}
		if d == "" {
			d = h.Get("X-Forgejo-Delivery")
		}
		return ev, d
	}
	return "", h.Get("X-Refit-Delivery")
}

// authentic checks the request's signature or token against secret.
func authentic(f Format, h http.Header, secret string, body []byte) bool {
	switch f {
	case FormatGitLab:
		tok := h.Get("X-Gitlab-Token")
		return tok != "" && equal(tok, secret)
	case FormatGitea:
		for _, name := range []string{"X-Gitea-Signature", "X-Forgejo-Signature"} {
			if v := h.Get(name); v != "" {
				return signed(strings.TrimPrefix(v, "sha256="), secret, body)
			}
		}
		return false
	}
	for _, name := range []string{"X-Hub-Signature-256", "X-Refit-Signature-256"} {
		if v := h.Get(name); v != "" {
			alg, sum, ok := strings.Cut(strings.TrimSpace(v), "=")
			return ok && strings.EqualFold(alg, "sha256") && signed(sum, secret, body)
		}
	}
	return false
}

// signed checks hexSum against HMAC-SHA256(secret, body), in constant time.
func signed(hexSum, secret string, body []byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(hexSum))
	if err != nil {
		return false
	}
	return hmac.Equal(got, Sign(secret, body))
}

// Sign returns HMAC-SHA256(secret, body): what a host puts, hex-encoded,
// in its signature header.
func Sign(secret string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return mac.Sum(nil)
}

// equal compares in constant time, independent of the lengths.
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := formatOf(r)
	log := h.cfg.Logger.With("format", trunc(string(f), 64), "remote", r.RemoteAddr)
	if !f.known() {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("unknown git webhook format %q (github, gitlab, gitea, generic)", trunc(string(f), 64))})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method " + trunc(r.Method, 16) + " not allowed"})
		return
	}
	body, status, err := httpbody.Read(w, r, h.cfg.MaxBody)
	if err != nil {
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	event, delivery := headers(f, r.Header)
	if f == FormatGitHub && event == "ping" {
		h.ping(w, r, f, body, log)
		return
	}
	p, err := Parse(f, event, delivery, body)
	if IsIgnored(err) {
		// Not a push: there is nothing to do, so nothing to authenticate.
		log.Info("git webhook event ignored", "event", trunc(event, 64))
		writeJSON(w, http.StatusOK, Verdict{Message: err.Error() + "; only pushes start runs"})
		return
	}
	if err != nil {
		log.Info("malformed git webhook", "error", err)
		if len(p.Repos) > 0 {
			d := Delivery{Format: f, Repos: p.Repos, Status: http.StatusBadRequest, Message: "unreadable push: " + err.Error()}
			if id := strings.TrimSpace(delivery); id != "" {
				d.Delivery = "git:" + string(f) + ":" + trunc(id, 200) // as deliveryID names it
			}
			h.record(r.Context(), d)
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	repo, ok := h.authenticate(w, r, f, p.Repos, body, log, func() {
		h.record(r.Context(), Delivery{Format: f, Repos: p.Repos, Delivery: p.Delivery, Ref: p.Ref, SHA: p.SHA,
			Status: http.StatusUnauthorized, Message: "refused: the signature does not verify with the repository's webhook secret, or none is set"})
	})
	if !ok {
		return
	}
	p.Repos = []string{repo}
	v, err := h.cfg.Accept(r.Context(), p)
	d := Delivery{Format: f, Repos: p.Repos, Authenticated: true, Delivery: p.Delivery, Ref: p.Ref, SHA: p.SHA}
	if err != nil {
		log.Error("accepting git push", "repo", redact.URL(p.Repos[0]), "ref", p.Ref, "error", err)
		d.Status, d.Message = http.StatusInternalServerError, "could not commit the push (see the server log); the host retries"
		h.record(r.Context(), d)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "could not commit the push; retry later"})
		return
	}
	log.Info("git push accepted", "repo", redact.URL(p.Repos[0]), "ref", p.Ref, "sha", p.SHA, "runs", len(v.Runs), "replay", v.Replay, "message", v.Message)
	d.Status, d.Message, d.Runs = http.StatusAccepted, v.Message, v.Runs
	h.record(r.Context(), d)
	writeJSON(w, http.StatusAccepted, v)
}

// record hands d to Config.Record, if set, before the answer is written
// (so what the host was told is on record when it reads the answer).
func (h *handler) record(ctx context.Context, d Delivery) {
	if h.cfg.Record != nil {
		h.cfg.Record(context.WithoutCancel(ctx), d)
	}
}

// authenticate looks up the repository's secret and checks the request
// with it, answering 401 (the same for no secret and a wrong one) or 500;
// it returns the repository whose secret verified. refused, when not nil,
// is called before a 401 is written.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request, f Format, repos []string, body []byte, log *slog.Logger, refused func()) (string, bool) {
	matched, secret, ok, err := h.cfg.Secret(r.Context(), repos)
	if err != nil {
		log.Error("reading git webhook secret", "repo", redact.URL(repos[0]), "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "could not read the webhook secret; retry later"})
		return "", false
	}
	if !ok || !authentic(f, r.Header, secret, body) {
		repo := trunc(redact.URL(repos[0]), 256)
		log.Warn("git webhook authentication failed", "repo", repo, "secret_set", ok)
		if refused != nil {
			refused()
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "signature does not verify with the webhook secret of " +
			repo + " (set one with: refit hook secret set " + repo + ")"})
		return "", false
	}
	return matched, true
}

// ping answers GitHub's ping: authenticated when it names a repository.
func (h *handler) ping(w http.ResponseWriter, r *http.Request, f Format, body []byte, log *slog.Logger) {
	var v struct {
		Repository *struct {
			CloneURL string `json:"clone_url"`
			SSHURL   string `json:"ssh_url"`
			HTMLURL  string `json:"html_url"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "github ping: decoding: " + err.Error()})
		return
	}
	if v.Repository != nil {
		var repos []string
		for _, u := range []string{v.Repository.CloneURL, v.Repository.SSHURL, v.Repository.HTMLURL} {
			if u != "" {
				repos = append(repos, u)
			}
		}
		if len(repos) > 0 {
			if _, ok := h.authenticate(w, r, f, repos, body, log, nil); !ok {
				return
			}
		}
	}
	log.Info("github ping answered")
	writeJSON(w, http.StatusOK, Verdict{Message: "pong"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
