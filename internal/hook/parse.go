package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Media types the parsers accept besides application/json.
const (
	mediaJSON             = "application/json"
	mediaDistributionV1   = "application/vnd.docker.distribution.events.v1+json"
	mediaDistributionV2   = "application/vnd.docker.distribution.events.v2+json"
	mediaCloudEvent       = "application/cloudevents+json"
	mediaCloudEventsBatch = "application/cloudevents-batch+json"
)

// Event types the parsers act on; every other type is ignored.
const (
	harborPushType         = "PUSH_ARTIFACT"
	harborCloudPushType    = "harbor.artifact.pushed"
	acrImagePushedType     = "Microsoft.ContainerRegistry.ImagePushed"
	eventGridValidationTyp = "Microsoft.EventGrid.SubscriptionValidationEvent"
)

// maxUnixSeconds is 9999-12-31T23:59:59Z; payload times beyond it are
// malformed.
const maxUnixSeconds = 253402300799

// parse parses one notification body of format f, sent with the given
// Content-Type (which may be empty), into the pushes it reports, and
// returns the code of an Event Grid subscription validation event, if the
// body carried one. Events that are not image pushes (pulls, deletes, blob
// uploads, scans, ...) are skipped, so a valid body may yield no pushes
// and a nil error.
//
// Errors wrap [ErrUnknownFormat] for an unsupported f and
// [ErrUnsupportedMediaType] for a content type that cannot carry f; any other
// error means the body is malformed, and its message names the offending
// field and event index. Error messages quote no body content but field
// names, positions and the offending value, escaped and cut to 100 bytes;
// every push returned has a Ref that parses as an image reference the way
// Docker reads one (github.com/distribution/reference). The result is deterministic for a given input.
// parse is safe for concurrent use.
func parse(f Format, contentType string, body []byte) ([]Push, string, error) {
	if !f.known() {
		return nil, "", fmt.Errorf("%w %q", ErrUnknownFormat, truncate(string(f), 64))
	}
	if err := checkContentType(f, contentType); err != nil {
		return nil, "", err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, "", errors.New("body is empty")
	}
	switch f {
	case FormatDistribution:
		p, err := parseDistribution(body)
		return p, "", err
	case FormatHarbor:
		p, err := parseHarbor(body)
		return p, "", err
	case FormatDockerHub:
		p, err := parseDockerHub(body)
		return p, "", err
	default: // FormatACR
		return parseACR(body)
	}
}

func (f Format) known() bool {
	switch f {
	case FormatDistribution, FormatHarbor, FormatDockerHub, FormatACR:
		return true
	}
	return false
}

// checkContentType accepts an empty content type, application/json, and the
// media types documented for format f.
func checkContentType(f Format, contentType string) error {
	if strings.TrimSpace(contentType) == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%w: cannot parse content type: %w", ErrUnsupportedMediaType, err)
	}
	if mt == mediaJSON {
		return nil
	}
	switch f {
	case FormatDistribution:
		if mt == mediaDistributionV1 || mt == mediaDistributionV2 {
			return nil
		}
	case FormatHarbor:
		if mt == mediaCloudEvent {
			return nil
		}
	case FormatACR:
		if mt == mediaCloudEvent || mt == mediaCloudEventsBatch {
			return nil
		}
	}
	return fmt.Errorf("%w %q for format %s", ErrUnsupportedMediaType, truncate(mt, 100), f)
}

// fieldError reports a malformed field; path names the field, starting with
// the event index where the format has several events.
type fieldError struct {
	path    string
	problem string
	err     error
}

func (e *fieldError) Error() string { return e.path + ": " + e.problem }
func (e *fieldError) Unwrap() error { return e.err }

func missing(path string) error { return &fieldError{path: path, problem: "missing"} }

// decode unmarshals data into v and turns JSON errors into messages that name
// the JSON path rather than Go types. prefix is the path of data in the body.
func decode(prefix string, data []byte, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	if prefix == "" {
		prefix = "body"
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &fieldError{path: prefix, problem: fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn), err: err}
	case errors.As(err, &typ):
		path := prefix
		if typ.Field != "" {
			path = join(prefix, typ.Field)
		}
		return &fieldError{path: path, problem: fmt.Sprintf("got JSON %s, want %s", typ.Value, jsonKind(typ.Type)), err: err}
	}
	return &fieldError{path: prefix, problem: "invalid JSON: " + err.Error(), err: err}
}

func join(prefix, field string) string {
	if prefix == "" || prefix == "body" {
		return field
	}
	return prefix + "." + field
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	if t == reflect.TypeFor[json.Number]() {
		return "number"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	}
	return "value"
}

// parseRFC3339 parses an optional RFC 3339 timestamp into UTC.
func parseRFC3339(path, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &fieldError{path: path, problem: "not an RFC 3339 time", err: err}
	}
	if t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, &fieldError{path: path, problem: "time out of range"}
	}
	return t.UTC(), nil
}

// parseUnix parses an optional Unix time in seconds, integral or fractional
// (Docker Hub sends e.g. 1.417566161e+09), into UTC.
func parseUnix(path string, n json.Number) (time.Time, error) {
	if n == "" {
		return time.Time{}, nil
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if i < 0 || i > maxUnixSeconds {
			return time.Time{}, &fieldError{path: path, problem: "time out of range"}
		}
		return time.Unix(i, 0).UTC(), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return time.Time{}, &fieldError{path: path, problem: "not a Unix time", err: err}
	}
	if math.IsNaN(f) || f < 0 || f > maxUnixSeconds {
		return time.Time{}, &fieldError{path: path, problem: "time out of range"}
	}
	sec := math.Floor(f)
	nsec := math.Round((f - sec) * 1e9)
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}

// hostOf returns host[:port] of an absolute URL, or "".
func hostOf(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// checkPush validates the fields every push must have, with the reference
// grammar Docker and refit read image references with
// (github.com/distribution/reference): a repository of lowercase path
// components, a registry host[:port], a tag of at most 128 word
// characters, dots and dashes, a digest go-digest accepts; and the whole
// of [Push.Ref] must parse as a reference. Fields are named by the JSON
// paths they came from; the offending value is quoted, escaped and cut to
// maxQuoted bytes.
func checkPush(p Push, repoPath, tagPath, digestPath, registryPath string) error {
	if p.Repository == "" {
		return missing(repoPath)
	}
	if p.Tag == "" && p.Digest == "" {
		return &fieldError{path: tagPath, problem: "missing, and there is no digest either"}
	}
	host := p.Registry
	if host != "" {
		named, err := reference.WithName(host + "/x")
		if err != nil || reference.Domain(named) != host {
			return &fieldError{path: registryPath, problem: "invalid registry host " + quote(host) +
				" (want host[:port])", err: err}
		}
		// Docker reads a first component without '.' or ':' (other than
		// localhost) as part of the repository, so such a host would name
		// another registry's image.
		if !strings.ContainsAny(host, ".:") && host != "localhost" {
			return &fieldError{path: registryPath, problem: "invalid registry host " + quote(host) +
				" (want a name with a dot or a port, or localhost: Docker reads " + quote(host) + " as part of a repository)"}
		}
	} else {
		host = "docker.io" // only to check the path; Ref leaves it out
	}
	named, err := reference.WithName(host + "/" + p.Repository)
	if err != nil || reference.Path(named) != p.Repository {
		return &fieldError{path: repoPath, problem: "invalid repository name " + quote(p.Repository) +
			" (" + repositoryProblem(p.Repository) + ")", err: err}
	}
	if p.Tag != "" {
		if _, err := reference.WithTag(named, p.Tag); err != nil {
			return &fieldError{path: tagPath, problem: "invalid tag " + quote(p.Tag) +
				" (want 1 to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-')", err: err}
		}
	}
	if p.Digest != "" {
		if _, err := digest.Parse(p.Digest); err != nil {
			return &fieldError{path: digestPath, problem: "invalid digest " + quote(p.Digest) + ": " + err.Error(), err: err}
		}
	}
	// The reference as Docker reads it, which is how refit's index reads
	// it: e.g. "docker.io/" + a one-component name gains "library/" and
	// may then be too long.
	if _, err := reference.ParseNormalizedNamed(p.Ref()); err != nil {
		return &fieldError{path: repoPath, problem: "invalid repository name " + quote(p.Repository) +
			" (" + repositoryProblem(p.Repository) + ")", err: err}
	}
	return nil
}

// repositoryProblem says what is wrong with an invalid repository name.
func repositoryProblem(repo string) string {
	max := reference.RepositoryNameTotalLengthMax
	switch named, err := reference.WithName("docker.io/" + repo); {
	case strings.ToLower(repo) != repo:
		return "must be lowercase"
	case len(repo) > max:
		return fmt.Sprintf("longer than %d characters", max)
	case err != nil || reference.Path(named) != repo:
		return "want path components of a-z and 0-9 separated by '.', '_', '__' or dashes, joined by '/'"
	default: // Docker reads it as a longer path, e.g. with "library/"
		return fmt.Sprintf("longer than %d characters as Docker reads it", max)
	}
}

// maxQuoted bounds the bytes of a payload value an error quotes.
const maxQuoted = 100

// quote returns s as a Go string literal of at most about maxQuoted bytes:
// control characters and invalid UTF-8 come out escaped, and the bound is
// on the escaped text, so a value of control characters (four bytes each
// once escaped) is cut shorter.
func quote(s string) string {
	for n := min(len(s), maxQuoted); ; n-- {
		q := strconv.Quote(truncate(s, n))
		if len(q) <= maxQuoted+len(`"..."`) || n == 0 {
			return q
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ---- CNCF distribution -------------------------------------------------

type distEvent struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Action    string `json:"action"`
	Target    struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
		URL        string `json:"url"`
	} `json:"target"`
	Request struct {
		Host string `json:"host"`
	} `json:"request"`
}

// isManifestMediaType reports whether mt names an image manifest or index
// (Docker schema 1/2, manifest lists, OCI manifests, indexes and artifact
// manifests) rather than a blob.
func isManifestMediaType(mt string) bool {
	mt, _, _ = strings.Cut(mt, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return strings.Contains(mt, ".manifest.") || strings.HasSuffix(mt, ".index.v1+json")
}

func parseDistribution(body []byte) ([]Push, error) {
	var env struct {
		Events *[]json.RawMessage `json:"events"`
	}
	if err := decode("", body, &env); err != nil {
		return nil, err
	}
	if env.Events == nil {
		return nil, missing("events")
	}
	var pushes []Push
	for i, raw := range *env.Events {
		path := fmt.Sprintf("events[%d]", i)
		var ev distEvent
		if err := decode(path, raw, &ev); err != nil {
			return nil, err
		}
		if ev.Action != "push" {
			continue // pull, delete, mount
		}
		t := ev.Target
		manifest := isManifestMediaType(t.MediaType) || t.Tag != "" ||
			strings.Contains(t.URL, "/manifests/")
		if !manifest {
			continue // blob upload
		}
		ts, err := parseRFC3339(path+".timestamp", ev.Timestamp)
		if err != nil {
			return nil, err
		}
		p := Push{
			Source:     string(FormatDistribution),
			EventID:    ev.ID,
			Registry:   ev.Request.Host,
			Repository: t.Repository,
			Tag:        t.Tag,
			Digest:     t.Digest,
			MediaType:  t.MediaType,
			Time:       ts,
		}
		registryPath := path + ".request.host"
		if p.Registry == "" {
			p.Registry = hostOf(t.URL)
			registryPath = path + ".target.url"
		}
		if err := checkPush(p, path+".target.repository", path+".target.tag",
			path+".target.digest", registryPath); err != nil {
			return nil, err
		}
		if p.EventID == "" {
			p.EventID = syntheticID(p.Source, p.Repository, p.Tag, p.Digest, p.Time)
		}
		pushes = append(pushes, p)
	}
	return pushes, nil
}

// ---- Harbor --------------------------------------------------------------

type harborData struct {
	Resources  []harborResource `json:"resources"`
	Repository *struct {
		Name         string `json:"name"`
		Namespace    string `json:"namespace"`
		RepoFullName string `json:"repo_full_name"`
	} `json:"repository"`
}

type harborResource struct {
	Digest      string `json:"digest"`
	Tag         string `json:"tag"`
	ResourceURL string `json:"resource_url"`
}

// harborRegistry extracts host[:port] from a resource_url such as
// "harbor.example/proj/repo:v1".
func harborRegistry(resourceURL string) string {
	u := resourceURL
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	host, _, ok := strings.Cut(u, "/")
	if !ok {
		return ""
	}
	return host
}

func parseHarbor(body []byte) ([]Push, error) {
	var msg struct {
		// Default payload.
		Type      string          `json:"type"`
		OccurAt   json.Number     `json:"occur_at"`
		EventData json.RawMessage `json:"event_data"`
		// CloudEvents payload.
		SpecVersion string          `json:"specversion"`
		ID          string          `json:"id"`
		Time        string          `json:"time"`
		Data        json.RawMessage `json:"data"`
	}
	if err := decode("", body, &msg); err != nil {
		return nil, err
	}
	dataPath, raw := "event_data", msg.EventData
	if msg.SpecVersion != "" {
		dataPath, raw = "data", msg.Data
	}
	switch {
	case msg.Type == "":
		return nil, missing("type")
	case msg.Type != harborPushType && msg.Type != harborCloudPushType:
		return nil, nil // pulls, deletes, scans, quota, replication, ...
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, missing(dataPath)
	}
	var data harborData
	if err := decode(dataPath, raw, &data); err != nil {
		return nil, err
	}
	ts, err := parseUnix("occur_at", msg.OccurAt)
	if err != nil {
		return nil, err
	}
	if msg.SpecVersion != "" && msg.Time != "" {
		if ts, err = parseRFC3339("time", msg.Time); err != nil {
			return nil, err
		}
	}
	repo := ""
	if r := data.Repository; r != nil {
		repo = r.RepoFullName
		if repo == "" && r.Name != "" {
			repo = r.Name
			if r.Namespace != "" && !strings.HasPrefix(r.Name, r.Namespace+"/") {
				repo = r.Namespace + "/" + r.Name
			}
		}
	}
	repoPath := dataPath + ".repository.repo_full_name"
	if repo == "" {
		return nil, missing(repoPath)
	}
	if len(data.Resources) == 0 {
		return nil, missing(dataPath + ".resources")
	}
	pushes := make([]Push, 0, len(data.Resources))
	for i, r := range data.Resources {
		path := fmt.Sprintf("%s.resources[%d]", dataPath, i)
		p := Push{
			Source:     string(FormatHarbor),
			Registry:   harborRegistry(r.ResourceURL),
			Repository: repo,
			Tag:        r.Tag,
			Digest:     r.Digest,
			Time:       ts,
		}
		if err := checkPush(p, repoPath, path+".tag", path+".digest", path+".resource_url"); err != nil {
			return nil, err
		}
		switch {
		case msg.SpecVersion != "" && msg.ID != "" && len(data.Resources) == 1:
			p.EventID = msg.ID
		case msg.SpecVersion != "" && msg.ID != "":
			p.EventID = msg.ID + "#" + strconv.Itoa(i)
		default:
			p.EventID = syntheticID(p.Source, p.Repository, p.Tag, p.Digest, p.Time)
		}
		pushes = append(pushes, p)
	}
	return pushes, nil
}

// ---- Docker Hub ----------------------------------------------------------

func parseDockerHub(body []byte) ([]Push, error) {
	var msg struct {
		PushData *struct {
			PushedAt json.Number `json:"pushed_at"`
			Tag      string      `json:"tag"`
		} `json:"push_data"`
		Repository *struct {
			RepoName  string `json:"repo_name"`
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"repository"`
	}
	if err := decode("", body, &msg); err != nil {
		return nil, err
	}
	if msg.PushData == nil {
		return nil, missing("push_data")
	}
	if msg.Repository == nil {
		return nil, missing("repository")
	}
	repo := msg.Repository.RepoName
	if repo == "" && msg.Repository.Name != "" {
		repo = msg.Repository.Name
		if msg.Repository.Namespace != "" {
			repo = msg.Repository.Namespace + "/" + repo
		}
	}
	if repo != "" && !strings.Contains(repo, "/") {
		repo = "library/" + repo // official images live under library/
	}
	ts, err := parseUnix("push_data.pushed_at", msg.PushData.PushedAt)
	if err != nil {
		return nil, err
	}
	p := Push{
		Source:     string(FormatDockerHub),
		Registry:   "docker.io",
		Repository: repo,
		Tag:        msg.PushData.Tag,
		Time:       ts,
	}
	if err := checkPush(p, "repository.repo_name", "push_data.tag", "", ""); err != nil {
		return nil, err
	}
	p.EventID = syntheticID(p.Source, p.Repository, p.Tag, p.Digest, p.Time)
	return []Push{p}, nil
}

// ---- Azure Container Registry via Event Grid -----------------------------

// egEvent covers both the Event Grid schema (eventType, eventTime) and the
// CloudEvents 1.0 schema (specversion, type, time).
type egEvent struct {
	ID          string          `json:"id"`
	EventType   string          `json:"eventType"`
	EventTime   string          `json:"eventTime"`
	SpecVersion string          `json:"specversion"`
	Type        string          `json:"type"`
	Time        string          `json:"time"`
	Data        json.RawMessage `json:"data"`
}

// acrData is the data of an ImagePushed event: ACR sends the
// distribution notification event as it is.
type acrData = distEvent

func parseACR(body []byte) ([]Push, string, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var raws []json.RawMessage
	var paths []string
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		if err := decode("", body, &raws); err != nil {
			return nil, "", err
		}
		for i := range raws {
			paths = append(paths, fmt.Sprintf("events[%d]", i))
		}
	case len(trimmed) > 0 && trimmed[0] == '{':
		raws = []json.RawMessage{body}
		paths = []string{"event"}
	default:
		return nil, "", &fieldError{path: "body", problem: "want a JSON array of events or a single event object"}
	}
	var pushes []Push
	validation := ""
	for i, raw := range raws {
		path := paths[i]
		var ev egEvent
		if err := decode(path, raw, &ev); err != nil {
			return nil, "", err
		}
		kind, kindPath := ev.EventType, path+".eventType"
		evTime, timePath := ev.EventTime, path+".eventTime"
		if ev.SpecVersion != "" || kind == "" {
			kind, kindPath = ev.Type, path+".type"
			evTime, timePath = ev.Time, path+".time"
		}
		switch kind {
		case "":
			return nil, "", missing(kindPath)
		case eventGridValidationTyp:
			var d struct {
				ValidationCode string `json:"validationCode"`
			}
			if len(ev.Data) > 0 {
				if err := decode(path+".data", ev.Data, &d); err != nil {
					return nil, "", err
				}
			}
			if d.ValidationCode == "" {
				return nil, "", missing(path + ".data.validationCode")
			}
			if validation == "" {
				validation = d.ValidationCode
			}
		case acrImagePushedType:
			p, ok, err := acrPush(path, ev, evTime, timePath)
			if err != nil {
				return nil, "", err
			}
			if ok {
				pushes = append(pushes, p)
			}
		}
		// Other types (ImageDeleted, ChartPushed, ...) are ignored.
	}
	return pushes, validation, nil
}

func acrPush(path string, ev egEvent, evTime, timePath string) (Push, bool, error) {
	if len(ev.Data) == 0 || string(ev.Data) == "null" {
		return Push{}, false, missing(path + ".data")
	}
	var d acrData
	if err := decode(path+".data", ev.Data, &d); err != nil {
		return Push{}, false, err
	}
	if d.Action != "" && d.Action != "push" {
		return Push{}, false, nil
	}
	ts, err := parseRFC3339(path+".data.timestamp", d.Timestamp)
	if err != nil {
		return Push{}, false, err
	}
	if ts.IsZero() {
		if ts, err = parseRFC3339(timePath, evTime); err != nil {
			return Push{}, false, err
		}
	}
	p := Push{
		Source:     string(FormatACR),
		EventID:    ev.ID,
		Registry:   d.Request.Host,
		Repository: d.Target.Repository,
		Tag:        d.Target.Tag,
		Digest:     d.Target.Digest,
		MediaType:  d.Target.MediaType,
		Time:       ts,
	}
	registryPath := path + ".data.request.host"
	if p.Registry == "" {
		p.Registry = hostOf(d.Target.URL)
		registryPath = path + ".data.target.url"
	}
	if err := checkPush(p, path+".data.target.repository", path+".data.target.tag",
		path+".data.target.digest", registryPath); err != nil {
		return Push{}, false, err
	}
	if p.EventID == "" {
		p.EventID = d.ID
	}
	if p.EventID == "" {
		p.EventID = syntheticID(p.Source, p.Repository, p.Tag, p.Digest, p.Time)
	}
	return p, true, nil
}
