package regclient

import "testing"

func TestInsecure(t *testing.T) {
	in := Insecure{"registry.internal:5000", "docker.io", "10.0.0.7:5000"}
	for host, want := range map[string]bool{
		// listed
		"registry.internal:5000": true,
		"10.0.0.7:5000":          true,
		"index.docker.io":        true, // docker.io's other name
		"docker.io":              true,
		// loopback, listed or not, any port
		"localhost":      true,
		"localhost:5000": true,
		"LOCALHOST:5000": true,
		"127.0.0.1":      true,
		"127.0.0.1:5000": true,
		"127.1.2.3:80":   true,
		"[::1]:5000":     true,
		"[::1]":          true,
		"::1":            true,
		// neither
		"registry.internal":       false, // another port
		"registry.internal:5001":  false,
		"10.0.0.8:5000":           false,
		"ghcr.io":                 false,
		"localhost.example.com":   false,
		"localhostile.example:80": false,
		"127.example.com:5000":    false,
		"[::2]:5000":              false,
		"":                        false,
	} {
		if got := in.Has(host); got != want {
			t.Errorf("Has(%q) = %v, want %v", host, got, want)
		}
	}
	if (Insecure)(nil).Has("ghcr.io") || !(Insecure)(nil).Has("127.0.0.1:5000") {
		t.Error("an empty list: want only loopback insecure")
	}
}
