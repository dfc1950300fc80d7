// Package registry owns the embedded OCI registry that refit serves: a
// distribution/v3 registry application backed by filesystem storage, exposed
// as an http.Handler for /v2/, which reports successful manifest pushes to a
// callback. It does not decide what to build.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Config configures a Registry.
type Config struct {
	// Dir is the storage root of the registry (required). It is created if
	// it does not exist; a Registry opened on a Dir written by an earlier one
	// serves the same content.
	Dir string
	// Logger receives the registry's own log records: one debug record per
	// request, an error record per 5xx response, and distribution's internal
	// logging at debug level. Nil discards them.
	Logger *slog.Logger
	// OnPush, if not nil, is called once for every manifest PUT that the
	// registry answered with 201 Created. It is called synchronously on the
	// request's goroutine after the response has been written, so it may be
	// called concurrently and should return quickly.
	OnPush func(PushEvent)
}

// PushEvent describes a manifest that was pushed successfully.
type PushEvent struct {
	// Repository is the repository name, e.g. "team/app".
	Repository string
	// Tag is the tag the manifest was pushed to, or "" when it was pushed by
	// digest.
	Tag string
	// Digest is the manifest digest as reported by the registry in the
	// Docker-Content-Digest response header.
	Digest string
	// MediaType is the manifest media type: the Content-Type the client sent
	// (without parameters) or, if it sent none, the manifest's own
	// mediaType field. It may be "" for manifests that declare neither.
	MediaType string
}

// Registry is an embedded OCI distribution registry. It is safe for
// concurrent use.
type Registry struct {
	app    http.Handler
	log    *slog.Logger
	dlog   *logrus.Entry
	onPush func(PushEvent)
}

// maxManifestCapture bounds how much of a manifest PUT body is kept to sniff
// its media type; distribution itself rejects manifests above 4 MiB.
const maxManifestCapture = 4 << 20

// wrap returns a Registry serving app, with cfg's logging and push
// notification around it.
func wrap(ctx context.Context, app http.Handler, dlog *logrus.Entry, cfg Config) *Registry {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dlog == nil {
		dlog = newDistributionLogger(ctx, logger)
	}
	return &Registry{app: app, log: logger, dlog: dlog, onPush: cfg.OnPush}
}

// ServeHTTP serves the OCI distribution API under /v2/. Requests outside
// /v2/ are answered with 404.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	repo, ref, isManifestPut := manifestPut(req)
	notify := isManifestPut && r.onPush != nil

	inner := req.WithContext(withDistributionLogger(req.Context(), r.dlog))
	var body *cappedBuffer
	if notify && mediaType(req.Header.Get("Content-Type")) == "" && req.Body != nil {
		body = &cappedBuffer{limit: maxManifestCapture}
		inner.Body = teeReadCloser{Reader: io.TeeReader(req.Body, body), Closer: req.Body}
	}

	rec := &statusRecorder{ResponseWriter: w}
	r.app.ServeHTTP(rec, inner)
	status := rec.statusCode()

	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelError
	}
	r.log.LogAttrs(req.Context(), level, "registry request",
		slog.String("method", req.Method),
		slog.String("path", req.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)))

	if !notify || status != http.StatusCreated {
		return
	}
	ev := PushEvent{
		Repository: repo,
		Digest:     rec.Header().Get("Docker-Content-Digest"),
		MediaType:  mediaType(req.Header.Get("Content-Type")),
	}
	if !isDigest(ref) {
		ev.Tag = ref
	}
	if ev.MediaType == "" && body != nil && !body.overflow {
		var m struct {
			MediaType string `json:"mediaType"`
		}
		if json.Unmarshal(body.Bytes(), &m) == nil {
			ev.MediaType = m.MediaType
		}
	}
	r.onPush(ev)
}

// manifestPut reports whether req is PUT /v2/<name>/manifests/<reference>
// and returns name and reference.
func manifestPut(req *http.Request) (name, ref string, ok bool) {
	if req.Method != http.MethodPut {
		return "", "", false
	}
	p, found := strings.CutPrefix(req.URL.Path, "/v2/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndex(p, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	name, ref = p[:i], p[i+len("/manifests/"):]
	if ref == "" || strings.Contains(ref, "/") {
		return "", "", false
	}
	return name, ref, true
}

// isDigest reports whether a manifest reference is a digest rather than a
// tag. Tags cannot contain ':' while digests always do.
func isDigest(ref string) bool {
	return strings.Contains(ref, ":")
}

// mediaType returns the media type of a Content-Type header value without
// parameters, or "" if it is empty or malformed.
func mediaType(contentType string) string {
	if contentType == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return mt
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) statusCode() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// cappedBuffer keeps up to limit bytes written to it and records whether
// more were offered.
type cappedBuffer struct {
	bytes.Buffer
	limit    int
	overflow bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.limit - c.Len(); len(p) > room {
		c.overflow = true
		if room > 0 {
			c.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

type teeReadCloser struct {
	io.Reader
	io.Closer
}

// dcontextPkg is the package of distribution's (internal) context key for its
// logger, which cannot be named from outside the module.
const dcontextPkg = "github.com/distribution/distribution/v3/internal/dcontext"

// loggerContext hands distribution a per-Registry logger: distribution looks
// its logger up in the context under an unexported key and otherwise falls
// back to logrus's process-wide standard logger.
type loggerContext struct {
	context.Context
	entry *logrus.Entry
}

func (c loggerContext) Value(key any) any {
	if t := reflect.TypeOf(key); t != nil && t.Name() == "loggerKey" && t.PkgPath() == dcontextPkg {
		return c.entry
	}
	return c.Context.Value(key)
}

func withDistributionLogger(ctx context.Context, entry *logrus.Entry) context.Context {
	return loggerContext{Context: ctx, entry: entry}
}

// newDistributionLogger returns a private logrus logger that forwards every
// record to l at debug level and writes nothing itself.
func newDistributionLogger(ctx context.Context, l *slog.Logger) *logrus.Entry {
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	lg.SetFormatter(discardFormatter{})
	lg.SetLevel(logrus.PanicLevel)
	if l.Enabled(ctx, slog.LevelDebug) {
		lg.SetLevel(logrus.DebugLevel)
		lg.AddHook(slogHook{log: l})
	}
	return logrus.NewEntry(lg)
}

type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// slogHook forwards logrus entries to a slog.Logger at debug level;
// distribution logs routine client errors (such as unknown blobs probed
// during a push) at error level, so its levels are kept only as an attribute.
type slogHook struct{ log *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys)+2)
	attrs = append(attrs, slog.String("component", "distribution"), slog.String("distribution.level", e.Level.String()))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, e.Data[k]))
	}
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	h.log.LogAttrs(ctx, slog.LevelDebug, e.Message, attrs...)
	return nil
}
