package events

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/store"
)

// NATS defaults.
const (
	DefaultNATSStream = "REFIT"
	DefaultNATSPrefix = "refit"
)

// NATSConfig configures the NATS JetStream sink.
type NATSConfig struct {
	// URL is the server, e.g. nats://127.0.0.1:4222; several may be given
	// separated by commas (a cluster). Credentials may be in the URL; they
	// are never logged.
	URL string
	// Stream is the JetStream stream events are stored in. If it does
	// not exist it is created (file storage, subjects "<Prefix>.>");
	// an existing stream is used as it is. Default "REFIT".
	Stream string
	// Prefix starts every subject: an event of type dev.refit.run.failed
	// is published on "<Prefix>.run.failed". Default "refit".
	Prefix string
	// CredsFile, when set, is a NATS credentials file (JWT and seed).
	CredsFile string
	// Timeout bounds connecting and each publish. Default 10s.
	Timeout time.Duration
}

// NATSSink publishes events to NATS JetStream, each on subject
// "<Prefix>.<type without dev.refit.>" as a structured-mode CloudEvent
// (header Content-Type: application/cloudevents+json) with the
// JetStream message id (header Nats-Msg-Id) set to the CloudEvents id,
// so that the stream drops a republished event within its duplicate
// window. It connects on first use and reconnects on its own.
type NATSSink struct {
	cfg NATSConfig

	mu sync.Mutex
	nc *nats.Conn
	js jetstream.JetStream
}

var _ Sink = (*NATSSink)(nil)

// NewNATSSink checks cfg and returns a sink; it does not connect yet.
func NewNATSSink(cfg NATSConfig) (*NATSSink, error) {
	setDefault(&cfg.Stream, DefaultNATSStream)
	setDefault(&cfg.Prefix, DefaultNATSPrefix)
	setDefault(&cfg.Timeout, DefaultTimeout)
	if cfg.URL == "" {
		return nil, errors.New("nats: no server URL")
	}
	for _, raw := range strings.Split(cfg.URL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("nats: server URL %q is not a URL", redact.URLs(raw))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("nats: server URL %s: scheme must be nats, tls, ws or wss", redact.URLs(raw))
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("nats: server URL %s has no host", redact.URLs(raw))
		}
	}
	if strings.ContainsAny(cfg.Stream, " \t\r\n.*>/\\") {
		return nil, fmt.Errorf("nats: stream name %q may not contain whitespace or any of . * > / \\", cfg.Stream)
	}
	for _, tok := range strings.Split(cfg.Prefix, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return nil, fmt.Errorf("nats: subject prefix %q must be dot-separated tokens without whitespace or wildcards", cfg.Prefix)
		}
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("nats: negative timeout %v", cfg.Timeout)
	}
	return &NATSSink{cfg: cfg}, nil
}

// Name is the sink's cursor name in the store.
func (s *NATSSink) Name() string { return "nats" }

// Subject returns the NATS subject an event type is published on.
func (s *NATSSink) Subject(typ string) string {
	return s.cfg.Prefix + "." + strings.TrimPrefix(typ, store.EventPrefix)
}

// Publish stores one event in the stream and waits for its ack.
func (s *NATSSink) Publish(ctx context.Context, e store.Event, body []byte) error {
	js, err := s.connect(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	msg := nats.NewMsg(s.Subject(e.Type))
	msg.Data = body
	msg.Header.Set("Content-Type", ContentType)
	_, err = js.PublishMsg(ctx, msg, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(s.cfg.Stream))
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.cfg.Stream, err)
	}
	return nil
}

// connect returns the JetStream context, connecting and making sure the
// stream exists the first time.
func (s *NATSSink) connect(ctx context.Context) (jetstream.JetStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.js != nil {
		return s.js, nil
	}
	opts := []nats.Option{nats.Name("refit"), nats.Timeout(s.cfg.Timeout), nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second)}
	if s.cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(s.cfg.CredsFile))
	}
	nc, err := nats.Connect(s.cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", redact.URLs(s.cfg.URL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if _, err := js.Stream(ctx, s.cfg.Stream); errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        s.cfg.Stream,
			Description: "refit events (CloudEvents)",
			Subjects:    []string{s.cfg.Prefix + ".>"},
			Storage:     jetstream.FileStorage,
		})
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			nc.Close()
			return nil, fmt.Errorf("creating stream %s: %w", s.cfg.Stream, err)
		}
	} else if err != nil {
		nc.Close()
		return nil, fmt.Errorf("looking up stream %s: %w", s.cfg.Stream, err)
	}
	s.nc, s.js = nc, js
	return js, nil
}

// Close closes the connection, if any.
func (s *NATSSink) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nc != nil {
		s.nc.Close()
		s.nc, s.js = nil, nil
	}
}
