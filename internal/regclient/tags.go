package regclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Limits of one tag listing (Tags); Config overrides them.
const (
	defaultTagPageSize  = 1000
	defaultMaxTagPages  = 1000
	defaultMaxTags      = 100_000
	defaultMaxPageBytes = 4 << 20
	// maxTagLen is the longest tag the distribution spec allows.
	maxTagLen = 128
)

// TagList says what one listing of a repository's tags did.
type TagList struct {
	// Tags is how many tags the registry listed.
	Tags int
	// Pages is how many pages it took.
	Pages int
	// Requests counts every HTTP request made (ping, token, pages).
	Requests int
}

// tagSession is an authenticated transport for one repository's
// listing, kept like a Puller's session (sessionTTL, dropped when the
// keychain's logins change or the registry answers 401/403).
type tagSession struct {
	rt  http.RoundTripper
	at  time.Time
	gen uint64
}

// Tags lists the tags of repository (a normalized "registry/repo",
// without tag) with GET /v2/<name>/tags/list, page after page, and calls
// fn with each tag in the order the registry sends them; it keeps none,
// so memory stays bounded by one page whatever the number of tags. Pages
// are asked for TagPageSize at a time (?n=) and followed through the
// Link header (same scheme and host only), or, when a registry sends no
// Link at all but a full page, with ?last=. It stops with an error past
// MaxTagPages pages or MaxTags tags, or when a page is over MaxPageBytes
// or is no tag list (see ParseTagsPage). It shares the registry's session
// with Check: the cached ping, the keychain's credentials (a bearer token
// per repository, reused for sessionTTL), the PerRegistry limit (one slot
// for the whole listing) and the registry-wide Retry-After hold: a
// registry asking to wait gets no request from any caller until then.
// Each page is bounded by the Timeout. Nothing is retried; errors are
// *Error.
func (c *Client) Tags(ctx context.Context, repository string, fn func(tag string)) (TagList, error) {
	var out TagList
	repo, err := c.parseRepo(repository)
	if err != nil {
		return out, &Error{Ref: repository, Err: err}
	}
	st := &callState{}
	ctx = context.WithValue(ctx, callStateKey{}, st)
	host := repo.RegistryStr()
	h := c.state(host)
	release, err := c.enter(ctx, h, h.sem, "a request slot", repository, host)
	if err != nil {
		return out, err
	}
	defer release()
	fail := func(err error) (TagList, error) {
		out.Requests = int(st.requests.Load())
		return out, c.failed(ctx, h, repository, st, err, func() { c.dropTagSession(h, repo.Name()) })
	}
	rt, err := c.tagSession(ctx, h, repo)
	if err != nil {
		return fail(err)
	}
	client := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	first := &url.URL{Scheme: repo.Scheme(), Host: host, Path: "/v2/" + repo.RepositoryStr() + "/tags/list",
		RawQuery: "n=" + strconv.Itoa(c.tagPageSize)}
	next, prevLast := first, ""
	seen := map[string]bool{}
	linked := false // the registry pages with Link: its absence is the end
	for next != nil {
		if seen[next.String()] {
			return fail(fmt.Errorf("the registry's pages of tags lead back to %s: listing stopped", next.RequestURI()))
		}
		seen[next.String()] = true
		if out.Pages >= c.maxTagPages {
			return fail(fmt.Errorf("more than %d pages of tags (at %d tags): listing stopped", c.maxTagPages, out.Tags))
		}
		n, last, link, err := c.tagPage(ctx, client, next, func(tag string) error {
			if out.Tags >= c.maxTags {
				return fmt.Errorf("more than %d tags: listing stopped", c.maxTags)
			}
			out.Tags++
			fn(tag)
			return nil
		})
		out.Pages++
		if err != nil {
			return fail(err)
		}
		switch {
		case link != nil:
			next, linked = link, true
		case !linked && n >= c.tagPageSize && last != "" && last != prevLast:
			// A full page and no Link: ask for what follows the last tag.
			u := *first
			u.RawQuery = url.Values{"n": {strconv.Itoa(c.tagPageSize)}, "last": {last}}.Encode()
			next = &u
		default:
			next = nil
		}
		prevLast = last
	}
	out.Requests = int(st.requests.Load())
	return out, nil
}

// tagPage GETs one page of tags and returns how many it held, the last
// one, and the next page's URL from its Link header (nil if none).
func (c *Client) tagPage(ctx context.Context, client *http.Client, u *url.URL, fn func(string) error) (int, string, *url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		resp.Body = io.NopCloser(io.LimitReader(resp.Body, 64<<10)) // an error body is read for its message
		return 0, "", nil, transport.CheckError(resp, http.StatusOK)
	}
	body := &io.LimitedReader{R: resp.Body, N: c.maxPageBytes + 1}
	n, last, err := ParseTagsPage(body, fn)
	if body.N <= 0 {
		return n, last, nil, fmt.Errorf("a page of tags is over %d bytes", c.maxPageBytes)
	}
	if err != nil {
		return n, last, nil, fmt.Errorf("reading %s: %w", u.Path, err)
	}
	link, err := nextLink(resp.Header.Get("Link"), u)
	return n, last, link, err
}

// nextLink reads a Link header's rel="next" target, resolved against
// the page's URL; it must stay on the page's scheme and host.
func nextLink(header string, page *url.URL) (*url.URL, error) {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if !strings.HasPrefix(part, "<") {
			continue
		}
		end := strings.Index(part, ">")
		if end < 0 {
			return nil, fmt.Errorf("malformed Link header (no '>')")
		}
		target, params := part[1:end], part[end+1:]
		if params != "" && !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) && !strings.Contains(params, "rel=next") {
			continue
		}
		if target == "" {
			return nil, nil
		}
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("malformed Link header: %v", err)
		}
		u = page.ResolveReference(u)
		if u.Scheme != page.Scheme || u.Host != page.Host {
			return nil, fmt.Errorf("the Link header leads to another registry (%s://%s): not followed", u.Scheme, u.Host)
		}
		return u, nil
	}
	return nil, nil
}

// ParseTagsPage reads one answer of GET /v2/<name>/tags/list
// ({"name": "...", "tags": ["...", ...]}) from r as a stream, calling fn
// with each tag in order, and returns how many there were and the last.
// It holds one tag at a time, never the list. Other members are skipped;
// a body that is not such an object, a tag that is not a string, empty,
// or longer than 128 bytes, is an error; so is an error fn returns.
// "tags": null is an empty list.
func ParseTagsPage(r io.Reader, fn func(tag string) error) (n int, last string, err error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return 0, "", fmt.Errorf("tag list: %w", err)
	}
	seenTags := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return n, last, fmt.Errorf("tag list: %w", err)
		}
		key, _ := tok.(string)
		if key != "tags" || seenTags {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return n, last, fmt.Errorf("tag list: member %q: %w", key, err)
			}
			continue
		}
		seenTags = true
		tok, err = dec.Token()
		if err != nil {
			return n, last, fmt.Errorf("tag list: tags: %w", err)
		}
		if tok == nil {
			continue
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return n, last, fmt.Errorf("tag list: tags is not a list")
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return n, last, fmt.Errorf("tag list: tags[%d]: %w", n, err)
			}
			tag, ok := tok.(string)
			switch {
			case !ok:
				return n, last, fmt.Errorf("tag list: tags[%d] is not a string", n)
			case tag == "" || len(tag) > maxTagLen:
				return n, last, fmt.Errorf("tag list: tags[%d] is empty or over %d bytes", n, maxTagLen)
			}
			if err := fn(tag); err != nil {
				return n, last, err
			}
			n++
			last = tag
		}
		if err := expectDelim(dec, ']'); err != nil {
			return n, last, fmt.Errorf("tag list: tags: %w", err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return n, last, fmt.Errorf("tag list: %w", err)
	}
	return n, last, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("got %v, want %q", tok, string(want))
	}
	return nil
}

// parseRepo parses a repository, plain HTTP for insecure hosts.
func (c *Client) parseRepo(repository string) (name.Repository, error) {
	if strings.ContainsAny(repository, "@") {
		return name.Repository{}, errors.New("a repository has no digest")
	}
	host, _, _ := strings.Cut(repository, "/")
	var opts []name.Option
	if c.insecure.Has(host) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(repository, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("parsing repository: %w", err)
	}
	if c.insecure.Has(r.RegistryStr()) && r.Scheme() != "http" {
		if r, err = name.NewRepository(repository, name.Insecure); err != nil {
			return name.Repository{}, fmt.Errorf("parsing repository: %w", err)
		}
	}
	return r, nil
}

// tagSession returns the authenticated transport for listing repo:
// built on the Client's ping cache and transport (so the registry is not
// pinged again), with the keychain's credentials and a pull-scoped token
// the transport refreshes itself when it expires.
func (c *Client) tagSession(ctx context.Context, h *hostState, repo name.Repository) (http.RoundTripper, error) {
	gen := c.generation()
	key := repo.Name()
	c.mu.Lock()
	s, ok := h.tagSessions[key]
	c.mu.Unlock()
	if ok && s.gen == gen && time.Since(s.at) < sessionTTL {
		return s.rt, nil
	}
	auth, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("resolving credentials for %s: %w", repo.RegistryStr(), err)
	}
	base := c.pings.wrap(&recorder{next: c.transport})
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	rt = transport.NewUserAgent(rt, userAgent)
	c.mu.Lock()
	if h.tagSessions == nil {
		h.tagSessions = map[string]tagSession{}
	}
	h.tagSessions[key] = tagSession{rt: rt, at: time.Now(), gen: gen}
	c.mu.Unlock()
	return rt, nil
}

// dropTagSession forgets the listing session of repository.
func (c *Client) dropTagSession(h *hostState, repository string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(h.tagSessions, repository)
}
