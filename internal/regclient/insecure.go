package regclient

import (
	"net"
	"strings"
)

// Insecure is refit's one rule for which registries are reached over
// plain HTTP: the hosts listed (host[:port], as in image references;
// "docker.io" and "index.docker.io" are one), and every loopback
// registry — localhost, 127.0.0.0/8 and [::1], on any port — listed or
// not. The registry client reads it for checks and look-ups, the runner
// for pushes; BuildKit's configuration gets the listed hosts and applies
// the loopback part itself (containerd's MatchLocalhost is this rule).
type Insecure []string

// Has reports whether host ("host[:port]") is reached over plain HTTP.
func (in Insecure) Has(host string) bool {
	if host == "" {
		return false // not Docker Hub, as name.NewRegistry would have it
	}
	if loopback(host) {
		return true
	}
	key := hostKey(host)
	for _, h := range in {
		if h == host || hostKey(h) == key {
			return true
		}
	}
	return false
}

// loopback reports whether host ("host[:port]", "[::1]:5000", "::1") is
// localhost or a loopback address.
func loopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
