package dockerfile

import (
	"strings"
	"testing"
	"time"
	"fmt"
)

func TestScratchSlow(t *testing.T) {
	mk := func(unit string) string {
		var sb strings.Builder
		for sb.Len() < MaxSize-len(unit)-20 {
			sb.WriteString(unit)
		}
		return sb.String()
	}
	var stagesB strings.Builder
	for i := 0; stagesB.Len() < MaxSize-40; i++ {
		fmt.Fprintf(&stagesB, "FROM a AS s%d\n", i)
	}
	var copies strings.Builder
	copies.WriteString("FROM a\n")
	for i := 0; copies.Len() < MaxSize-40; i++ {
		fmt.Fprintf(&copies, "COPY --from=i%d a b\n", i)
	}
	var stcopies strings.Builder
	for i := 0; stcopies.Len() < MaxSize/2; i++ {
		fmt.Fprintf(&stcopies, "FROM a AS s%d\n", i)
	}
	for i := 0; stcopies.Len() < MaxSize-40; i++ {
		fmt.Fprintf(&stcopies, "COPY --from=S1 a b\n")
	}
	for name, in := range map[string]string{
		"continuations": "FROM a\nRUN " + mk("x \\\n"),
		"empty cont":    "FROM a\nRUN " + mk("\\\n"),
		"heredocs":      "FROM a\nRUN " + mk("<<A ") + "\nA\n",
		"heredoc body":  "FROM a\nRUN <<A\n" + mk("xxxxxxxxxxxxxx\n") + "A\n",
		"comments":      mk("# c\n") + "FROM a\n",
		"from":          mk("FROM a\n"),
		"stages":        stagesB.String(),
		"copies":        copies.String(),
		"stcopies":      stcopies.String(),
		"args":          mk("ARG A=$A$A\n") + "FROM a",
		"argsub":        "ARG A=" + mk("${A:-${A:-") + "\nFROM a",
		"mounts":        "FROM a\nRUN " + mk("--mount=from=b ") + " ls",
		"runs":          "FROM a\n" + mk("RUN --mount=from=b,target=/ ls\n"),
		"envs":          "FROM a\nENV " + mk("a=b "),
		"labels":        "FROM a\n" + mk("LABEL a=b\n"),
		"quotes":        "FROM a\nRUN " + mk("\"'"),
		"json":          "FROM a\nRUN [" + mk("\"a\",") + "\"b\"]",
		"lines":         mk("\n") + "FROM a",
	} {
		start := time.Now()
		_, err := Parse(strings.NewReader(in), Options{})
		es := ""
		if err != nil {
			es = err.Error()
			if len(es) > 80 {
				es = es[:80]
			}
		}
		t.Logf("%-14s %8v %s", name, time.Since(start).Round(time.Millisecond), es)
	}
}
