package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/refit-dev/refit/internal/store"
)

// SchemaBase starts every event's dataschema: SchemaBase + the type
// without store.EventPrefix + "/v1", e.g.
// "https://refit.dev/schemas/run.succeeded/v1". The version changes only
// with an incompatible change to the data.
const SchemaBase = "https://refit.dev/schemas/"

// ContentType is the media type of a delivery body: one CloudEvent in
// structured mode.
const ContentType = "application/cloudevents+json"

// Delivery request headers.
const (
	// HeaderSignature holds Sign(secret, body); only sent when the
	// subscription has a secret.
	HeaderSignature = "X-Refit-Signature-256"
	// HeaderTimestamp holds the attempt's time in Unix seconds.
	HeaderTimestamp = "X-Refit-Timestamp"
	// HeaderDelivery holds "<subscription id>/<event seq>"; it is the same
	// for every attempt of one delivery.
	HeaderDelivery = "X-Refit-Delivery"

	// HeaderWebhookID, HeaderWebhookTimestamp and HeaderWebhookSignature
	// are the Standard Webhooks headers (https://www.standardwebhooks.com),
	// sent beside the ones above. webhook-id is the event's id (the
	// CloudEvents id: the same for every attempt, redelivery and
	// subscription); webhook-timestamp is the attempt's time in Unix
	// seconds, as in HeaderTimestamp; webhook-signature holds
	// SignStandard(secret, id, timestamp, body), only when the
	// subscription has a secret. Unlike HeaderSignature, it covers the id
	// and timestamp, so a receiver that rejects stale timestamps rejects
	// replays.
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// DataSchema returns the dataschema attribute for an event type.
func DataSchema(typ string) string {
	return SchemaBase + strings.TrimPrefix(typ, store.EventPrefix) + "/v1"
}

// CloudEvent renders e as a CloudEvents 1.0 event in structured JSON
// mode: specversion "1.0", id e.ID (stable across redeliveries), type
// e.Type, the given source, subject e.Subject, time e.Time,
// datacontenttype "application/json", dataschema DataSchema(e.Type) and
// data e.Data (which must be JSON). The result holds no newline, so it
// can go on one SSE data line.
func CloudEvent(e store.Event, source string) ([]byte, error) {
	ev := event.New(event.CloudEventsVersionV1)
	ev.SetID(e.ID)
	ev.SetType(e.Type)
	ev.SetSource(source)
	ev.SetSubject(e.Subject)
	ev.SetTime(e.Time)
	ev.SetDataSchema(DataSchema(e.Type))
	ev.SetDataContentType(event.ApplicationJSON)
	if len(e.Data) > 0 {
		// json.RawMessage is not a []byte to SetData, so it is marshaled:
		// validated and compacted, never base64-encoded.
		if err := ev.SetData(event.ApplicationJSON, e.Data); err != nil {
			return nil, fmt.Errorf("encoding data of event %s: %w", e.ID, err)
		}
	}
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("rendering event %s as a CloudEvent: %w", e.ID, err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("rendering event %s as a CloudEvent: %w", e.ID, err)
	}
	return b, nil
}

// Sign returns "sha256=" + hex(HMAC-SHA256(secret, body)), the value of
// the X-Refit-Signature-256 header (GitHub's scheme). Receivers should
// compare it with hmac.Equal.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// SignStandard returns the webhook-signature value of the Standard
// Webhooks scheme: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp +
// "." + body)), with timestamp in decimal Unix seconds and standard
// base64 with padding. The key is the subscription secret's bytes as
// given: unlike a Standard Webhooks "whsec_<base64>" secret, it is not
// base64-decoded (a Standard Webhooks library verifies it when given
// "whsec_" + base64(secret)).
func SignStandard(secret, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Match reports whether sub wants e.
//
//   - Types: empty matches every type; otherwise e.Type must equal an
//     entry, written in full or without store.EventPrefix.
//   - TaskGlob applies to events about tasks (all but base.updated): ""
//     matches every task, otherwise path.Match on the subject (the task
//     name). base.updated events match only subscriptions whose TaskGlob
//     is "".
//   - RefGlob applies to base.updated (subject = the base reference): ""
//     matches every reference, otherwise a path.Match pattern in which
//     '*' and '?' also match '/', so "ghcr.io/acme/*" matches
//     "ghcr.io/acme/team/app:1" and "*alpine*" matches any alpine
//     image. Events about tasks match only subscriptions whose RefGlob is
//     "".
//   - A base.updated event matches a TaskGlob when one of the tasks it
//     rebuilds (its data's "tasks") matches.
//   - base.tagged (subject = the repository) is matched like base.updated.
//   - base.diff events match as base.updated ones do.
//
// A malformed pattern matches nothing.
func Match(sub store.Subscription, e store.Event) bool {
	if len(sub.Types) > 0 {
		ok := false
		for _, t := range sub.Types {
			if t == e.Type || store.EventPrefix+t == e.Type {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if e.Type == store.EventBaseUpdated || e.Type == store.EventBaseTagged || e.Type == store.EventBaseDiff {
		if sub.RefGlob != "" && !refMatch(sub.RefGlob, e.Subject) {
			return false
		}
		return sub.TaskGlob == "" || rebuildsMatching(sub.TaskGlob, e.Data)
	}
	if sub.RefGlob != "" {
		return false
	}
	if sub.TaskGlob == "" {
		return true
	}
	ok, err := path.Match(sub.TaskGlob, e.Subject)
	return ok && err == nil
}

// rebuildsMatching reports whether a base.updated event's data names a
// task (one the update rebuilds) matching glob.
func rebuildsMatching(glob string, data []byte) bool {
	var d struct {
		Tasks []string `json:"tasks"`
	}
	if json.Unmarshal(data, &d) != nil {
		return false
	}
	for _, t := range d.Tasks {
		if ok, err := path.Match(glob, t); ok && err == nil {
			return true
		}
	}
	return false
}

// refMatch is path.Match with '/' made an ordinary character: a byte no
// reference holds stands in for it on both sides.
func refMatch(pattern, ref string) bool {
	const slash = "\x00"
	ok, err := path.Match(strings.ReplaceAll(pattern, "/", slash), strings.ReplaceAll(ref, "/", slash))
	return ok && err == nil
}

// ErrInvalidTarget is wrapped by ValidateTarget's errors.
var ErrInvalidTarget = errors.New("invalid subscription URL")

// ValidateTarget checks a subscription URL: absolute http or https, with
// a host and no userinfo. When allow is not empty the host must be
// listed in it: an entry is a host name or IP ("hooks.example.com"), a
// host and port ("10.0.0.5:8080", matching only that port), or
// "*.example.com" (any subdomain, not example.com itself); comparison
// ignores case. The error wraps ErrInvalidTarget and names the URL,
// without any userinfo, and the problem.
func ValidateTarget(rawURL string, allow []string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, credentials and all
		}
		return fmt.Errorf("%w: %v", ErrInvalidTarget, err)
	}
	shown := *u
	shown.User = nil
	name := shown.String()
	switch {
	case !u.IsAbs():
		return fmt.Errorf("%w %s: not absolute (want http:// or https://)", ErrInvalidTarget, name)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w %s: scheme %q is not http or https", ErrInvalidTarget, name, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%w %s: no host", ErrInvalidTarget, name)
	case u.User != nil:
		return fmt.Errorf("%w %s: must not hold credentials (userinfo); use the subscription's secret", ErrInvalidTarget, name)
	}
	if len(allow) > 0 && !hostAllowed(u, allow) {
		return fmt.Errorf("%w %s: host %s is not in the allowed hosts", ErrInvalidTarget, name, u.Hostname())
	}
	return nil
}

func hostAllowed(u *url.URL, allow []string) bool {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	for _, a := range allow {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		if h, p, ok := splitHostPort(a); ok {
			if h == host && p == port {
				return true
			}
			continue
		}
		a = strings.Trim(a, "[]")
		if a == host || (strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:])) {
			return true
		}
	}
	return false
}

// splitHostPort splits "host:port" or "[v6]:port"; a bare IPv6 address
// is no host:port.
func splitHostPort(s string) (host, port string, ok bool) {
	u, err := url.Parse("//" + s)
	if err != nil || u.Port() == "" {
		return "", "", false
	}
	return u.Hostname(), u.Port(), true
}
