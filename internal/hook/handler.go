package hook

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
)

// DefaultMaxBody is the request body limit used when [Config.MaxBody] is not
// positive.
const DefaultMaxBody int64 = 1 << 20

// Route is the path prefix [Handler] expects to be mounted at.
const Route = "/hooks/registry/"

// Headers the handler reads or writes.
const (
	headerSignature       = "X-Refit-Signature-256"
	headerHubSignature    = "X-Hub-Signature-256"
	headerRequestOrigin   = "WebHook-Request-Origin"
	headerAllowedOrigin   = "WebHook-Allowed-Origin"
	headerAllowedRate     = "WebHook-Allowed-Rate"
	wwwAuthenticateHeader = `Bearer realm="refit-hooks"`
)

// Config configures [Handler].
type Config struct {
	// Secrets holds the shared secret of each format. A format with no (or an
	// empty) secret is refused with 403 "webhook source X is not configured";
	// no format is ever open by accident. The map is copied by Handler.
	Secrets map[Format]string
	// MaxBody bounds a request body in bytes; larger bodies get 413 and are
	// never parsed. Zero or negative means DefaultMaxBody (1 MiB).
	MaxBody int64
	// Accept is called with the pushes of one authenticated, valid
	// notification (never with zero pushes). It must commit them,
	// idempotently on Push.EventID, before returning: registries retry
	// deliveries, so the same pushes may arrive again. An error yields 500,
	// which makes the registry retry. Required.
	Accept func(ctx context.Context, f Format, pushes []Push) error
	// Logger receives one record per request outcome. Secrets and bodies are
	// never logged. Nil discards.
	Logger *slog.Logger
}

type handler struct {
	secrets map[Format]string
	maxBody int64
	accept  func(ctx context.Context, f Format, pushes []Push) error
	log     *slog.Logger
}

// Handler returns the handler for POST /hooks/registry/{format}, where format
// is one of the [Format] constants; mount it at [Route] (it also works behind
// http.StripPrefix, or on a pattern with a {format} wildcard).
//
// Per request, in this order, it: answers 404 for an unknown format; 405
// for methods other than POST (and OPTIONS for the Event Grid handshake on
// "acr"); 403 when the format has no secret; 401 with WWW-Authenticate
// when neither the secret nor a signature is presented; 413 when the body
// exceeds MaxBody; 401 when a signature (X-Refit-Signature-256 or
// X-Hub-Signature-256) does not match the body; only then 415 for a
// content type that cannot carry the format; 400 for a malformed body or
// a name that is no image reference, naming the field and event index;
// 500 when Accept fails. Otherwise it answers 202 with {"accepted":N}
// when N>0 pushes were accepted, or 200 with {"accepted":0}.
// An Event Grid subscription validation event is answered, after
// authentication, with 200 {"validationResponse": code}. Error bodies are
// {"error": "..."} and never contain the secret.
//
// The secret may be presented as "Authorization: Bearer <secret>",
// "Authorization: <secret>", the query parameter "token", or an HMAC-SHA256 of
// the body keyed with the secret in X-Refit-Signature-256 or
// X-Hub-Signature-256 ("sha256=<hex>"). All comparisons are constant-time.
//
// Handler panics if cfg.Accept is nil.
func Handler(cfg Config) http.Handler {
	if cfg.Accept == nil {
		panic("hook: Config.Accept is required")
	}
	h := &handler{
		secrets: make(map[Format]string, len(cfg.Secrets)),
		maxBody: cfg.MaxBody,
		accept:  cfg.Accept,
		log:     cfg.Logger,
	}
	for f, s := range cfg.Secrets {
		if s != "" {
			h.secrets[f] = s
		}
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// formatOf extracts the format from the request path.
func formatOf(r *http.Request) Format {
	if v := r.PathValue("format"); v != "" {
		return Format(v)
	}
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, Route); ok {
		p = rest
	} else {
		p = strings.TrimPrefix(p, "/")
	}
	return Format(strings.TrimSuffix(p, "/"))
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := formatOf(r)
	log := h.log.With("format", truncate(string(f), 64), "remote", r.RemoteAddr)
	if !f.known() {
		log.Info("webhook for unknown format")
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown webhook format %q", truncate(string(f), 64)))
		return
	}
	handshake := r.Method == http.MethodOptions && f == FormatACR
	if r.Method != http.MethodPost && !handshake {
		allow := "POST"
		if f == FormatACR {
			allow = "POST, OPTIONS"
		}
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method "+truncate(r.Method, 16)+" not allowed")
		return
	}
	secret, ok := h.secrets[f]
	if !ok {
		log.Warn("webhook for unconfigured source")
		writeError(w, http.StatusForbidden, fmt.Sprintf("webhook source %s is not configured", f))
		return
	}

	authed := tokenMatches(r, secret)
	sig, hasSig := signatureHeader(r)
	if !authed && (!hasSig || handshake) {
		h.unauthorized(w, log)
		return
	}
	if handshake {
		h.abuseProtection(w, r, log)
		return
	}

	// A signature can only be checked on the body, so the body is read
	// (bounded) first; nothing about the request is judged before it is
	// authenticated.
	body, status, err := httpbody.Read(w, r, h.maxBody)
	if err != nil {
		log.Info("webhook body rejected", "status", status, "error", err)
		writeError(w, status, err.Error())
		return
	}
	if !authed && !signatureMatches(sig, secret, body) {
		h.unauthorized(w, log)
		return
	}
	if err := checkContentType(f, r.Header.Get("Content-Type")); err != nil {
		log.Info("webhook with unsupported content type")
		writeError(w, http.StatusUnsupportedMediaType, err.Error())
		return
	}

	pushes, validation, err := parse(f, r.Header.Get("Content-Type"), body)
	if err != nil {
		log.Info("malformed webhook", "error", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(pushes) > 0 {
		if err := h.accept(r.Context(), f, pushes); err != nil {
			log.Error("accepting pushes", "pushes", len(pushes), "error", err)
			writeError(w, http.StatusInternalServerError, "could not commit pushes; retry later")
			return
		}
	}
	if validation != "" {
		log.Info("event grid subscription validated")
		writeJSON(w, http.StatusOK, map[string]string{"validationResponse": validation})
		return
	}
	status = http.StatusOK
	if len(pushes) > 0 {
		status = http.StatusAccepted
	}
	log.Info("webhook accepted", "pushes", len(pushes))
	writeJSON(w, status, map[string]int{"accepted": len(pushes)})
}

// abuseProtection answers the CloudEvents 1.0 webhook validation handshake
// Event Grid sends before delivering CloudEvents.
func (h *handler) abuseProtection(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	w.Header().Set("Allow", "POST, OPTIONS")
	origin := r.Header.Get(headerRequestOrigin)
	if origin == "" {
		writeError(w, http.StatusBadRequest, "missing "+headerRequestOrigin+" header")
		return
	}
	w.Header().Set(headerAllowedOrigin, origin)
	w.Header().Set(headerAllowedRate, "*")
	log.Info("cloudevents webhook handshake answered")
	w.WriteHeader(http.StatusOK)
}

func (h *handler) unauthorized(w http.ResponseWriter, log *slog.Logger) {
	log.Warn("webhook authentication failed")
	w.Header().Set("WWW-Authenticate", wwwAuthenticateHeader)
	writeError(w, http.StatusUnauthorized, "missing or invalid webhook credentials")
}

// tokenMatches reports whether the request carries the secret in the
// Authorization header (bare or as a bearer token) or the token query
// parameter.
func tokenMatches(r *http.Request, secret string) bool {
	ok := false
	if auth := r.Header.Get("Authorization"); auth != "" {
		ok = equal(auth, secret)
		if scheme, rest, found := strings.Cut(auth, " "); found && strings.EqualFold(scheme, "Bearer") {
			ok = equal(strings.TrimSpace(rest), secret) || ok
		}
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		ok = equal(tok, secret) || ok
	}
	return ok
}

// signatureHeader returns the hex HMAC from X-Refit-Signature-256 or
// X-Hub-Signature-256, if either is present.
func signatureHeader(r *http.Request) (string, bool) {
	for _, name := range []string{headerSignature, headerHubSignature} {
		if v := r.Header.Get(name); v != "" {
			return v, true
		}
	}
	return "", false
}

// signatureMatches checks "sha256=<hex>" against HMAC-SHA256(secret, body).
func signatureMatches(sig, secret string, body []byte) bool {
	alg, hexSum, ok := strings.Cut(strings.TrimSpace(sig), "=")
	if !ok || !strings.EqualFold(alg, "sha256") {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// equal compares a and b in constant time, independent of their lengths.
func equal(a, b string) bool {
	ha := sha256.Sum256([]byte(a))
	hb := sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
