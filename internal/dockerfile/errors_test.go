package dockerfile_test

import (
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/dockerfile"
)

// TestErrorsQuoteLittle plants a long secret where a Dockerfile error
// would quote it and checks the message repeats at most 64 bytes of it,
// stays short, and carries no control characters: a Dockerfile may be
// untrusted, and its errors reach run records, events and logs.
func TestErrorsQuoteLittle(t *testing.T) {
	secret := "refit_" + strings.Repeat("35a3f09c", 16) // 134 bytes, one token
	spaced := "db_password = " + strings.Repeat("hunter2 ", 40)
	cases := map[string]string{
		"a whole-line secret":     secret + "\n",
		"secret after FROM":       "FROM busybox\n" + secret + "\n",
		"a secret line w/ spaces": spaced + "\n",
		"uppercase FROM":          "FROM " + strings.ToUpper(secret) + "\n",
		"COPY --from":             "FROM busybox\nCOPY --from=" + strings.ToUpper(secret) + " /a /b\n",
		"RUN --mount from":        "FROM busybox\nRUN --mount=type=bind,from=" + strings.ToUpper(secret) + " true\n",
		"LABEL without =":         "FROM busybox\nLABEL " + secret + "\n",
		"FROM --platform":         "FROM --platform=" + secret + " busybox\n",
		"pattern substitution":    "ARG A=${B/" + secret + "/x}\nFROM busybox\n",
		"stage name":              "FROM busybox AS 9" + secret + "\n",
		"escape sequences":        "\x1b[31m" + secret + "\x07\n",
	}
	for name, in := range cases {
		_, err := dockerfile.Parse(strings.NewReader(in), dockerfile.Options{})
		if err == nil {
			t.Errorf("%s: parsed without error", name)
			continue
		}
		msg := err.Error()
		for _, s := range []string{secret, strings.ToUpper(secret), spaced} {
			if i := longestCommon(msg, s); i > 64 {
				t.Errorf("%s: error repeats %d bytes of the file: %q", name, i, msg)
			}
		}
		if len(msg) > 300 {
			t.Errorf("%s: error is %d bytes long: %q", name, len(msg), msg)
		}
		if strings.ContainsAny(msg, "\x1b\x07\n") {
			t.Errorf("%s: error carries control characters: %q", name, msg)
		}
		if !strings.HasPrefix(msg, "line ") {
			t.Errorf("%s: error %q does not name the line", name, msg)
		}
	}
	// An unknown instruction — the first word of whatever file it is —
	// is clipped harder.
	_, err := dockerfile.Parse(strings.NewReader(secret+"\n"), dockerfile.Options{})
	if want := "line 1: unknown instruction: " + secret[:20] + "…"; err == nil || err.Error() != want {
		t.Errorf("unknown long instruction: got %v, want %s", err, want)
	}
	// Short tokens are quoted whole, as before.
	_, err = dockerfile.Parse(strings.NewReader("FORM busybox\n"), dockerfile.Options{})
	if err == nil || err.Error() != "line 1: unknown instruction: FORM (did you mean FROM?)" {
		t.Errorf("unknown instruction: got %v", err)
	}
}

// longestCommon returns the length of the longest substring of a that
// is also a substring of b.
func longestCommon(a, b string) int {
	best := 0
	for i := range a {
		for j := i + best + 1; j <= len(a); j++ {
			if !strings.Contains(b, a[i:j]) {
				break
			}
			best = j - i
		}
	}
	return best
}
