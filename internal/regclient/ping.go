package regclient

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// pingCache makes a Client ping each registry (per scheme) once, not
// once per repository: go-containerregistry sets up a transport per
// repository and pings the registry's /v2/ each time. The answer (200,
// or 401 with its challenge) does not depend on the repository, so the
// first one is kept for sessionTTL and replayed to later set-ups without
// a request; token scopes stay per repository (the bearer transport asks
// for a token per repository, as before). An HTTPS probe of a registry
// Insecure names (plain HTTP by configuration) fails here at once,
// without a request, so the plain-HTTP ping that runs beside it wins.
type pingCache struct {
	insecure func(host string) bool

	mu      sync.Mutex
	entries map[string]*pingEntry // "scheme://host"
}

// pingEntry is one registry's ping answer; ready closes once it is
// known (or the ping failed, then status is 0 and the next one pings).
type pingEntry struct {
	ready  chan struct{}
	status int
	header http.Header
	at     time.Time
}

// wrap returns a RoundTripper answering pings from the cache and sending
// everything else to next.
func (p *pingCache) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet || req.URL.Path != "/v2/" {
			return next.RoundTrip(req)
		}
		return p.ping(req, next)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func (p *pingCache) ping(req *http.Request, next http.RoundTripper) (*http.Response, error) {
	if req.URL.Scheme == "https" && p.insecure(req.URL.Host) {
		return nil, fmt.Errorf("registry %s is reached over plain HTTP (loopback or --insecure-registry): no HTTPS probe", req.URL.Host)
	}
	key := req.URL.Scheme + "://" + req.URL.Host
	for {
		p.mu.Lock()
		e := p.entries[key]
		if e != nil {
			select {
			case <-e.ready:
				if e.status == 0 || time.Since(e.at) >= sessionTTL {
					e = nil // failed or stale: ping again
				}
			default:
			}
		}
		if e == nil {
			e = &pingEntry{ready: make(chan struct{})}
			p.entries[key] = e
			p.mu.Unlock()
			return p.fetch(req, next, e)
		}
		p.mu.Unlock()
		select {
		case <-e.ready:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		if e.status != 0 {
			return e.replay(req), nil
		}
		// That ping failed; try it ourselves.
	}
}

// fetch pings for real and fills e.
func (p *pingCache) fetch(req *http.Request, next http.RoundTripper, e *pingEntry) (*http.Response, error) {
	defer close(e.ready)
	resp, err := next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return resp, nil // not kept: the caller reports it
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	e.status, e.header, e.at = resp.StatusCode, resp.Header.Clone(), time.Now()
	return e.replay(req), nil
}

// replay is the kept answer, for req.
func (e *pingEntry) replay(req *http.Request) *http.Response {
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", e.status, http.StatusText(e.status)),
		StatusCode: e.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  e.header.Clone(),
		Body:    io.NopCloser(bytes.NewReader(nil)),
		Request: req,
	}
}
