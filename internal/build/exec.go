package build

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// ExecRequest runs a command inside a pushed image.
type ExecRequest struct {
	// Image is the image to run in, by digest ("repo@sha256:…") (required).
	Image string
	// Args is the argv to run (required); the image's environment,
	// working directory and user apply.
	Args []string
	// Platform of the image to run ("linux/amd64"); "" = the daemon's.
	Platform string
}

// Exec runs req.Args inside req.Image through BuildKit — an LLB exec on
// the image's root filesystem, no Docker engine — and exports nothing.
// The command's output is in the progress sent on status, which Exec
// closes. A command that exits non-zero is an error whose ExitCode says
// the code.
func (b *Builder) Exec(ctx context.Context, req ExecRequest, status chan *client.SolveStatus) error {
	if status == nil {
		status = make(chan *client.SolveStatus)
		go func() {
			for range status {
			}
		}()
	}
	if req.Image == "" || len(req.Args) == 0 {
		close(status)
		return errors.New("exec: no image or no command")
	}
	addr := b.addr()
	c, err := client.New(ctx, addr)
	if err != nil {
		close(status)
		return fmt.Errorf("connecting to buildkit at %s: %w", addr, err)
	}
	defer c.Close()
	opt := client.SolveOpt{
		Session: []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
			AuthConfigProvider: b.authConfig(),
		})},
	}
	_, err = c.Build(ctx, opt, "refit", func(ctx context.Context, gw gwclient.Client) (*gwclient.Result, error) {
		var iopts []llb.ImageOption
		iopts = append(iopts, llb.WithMetaResolver(gw))
		var copts []llb.ConstraintsOpt
		if req.Platform != "" {
			p, err := parsePlatform(req.Platform)
			if err != nil {
				return nil, err
			}
			iopts = append(iopts, llb.Platform(p))
			copts = append(copts, llb.Platform(p))
		}
		img := llb.Image(req.Image, iopts...)
		run := img.Run(llb.Args(req.Args), llb.WithCustomName("test: "+fmt.Sprint(req.Args)), llb.IgnoreCache)
		def, err := run.Root().Marshal(ctx, copts...)
		if err != nil {
			return nil, fmt.Errorf("describing the test command: %w", err)
		}
		return gw.Solve(ctx, gwclient.SolveRequest{Definition: def.ToPB(), Evaluate: true})
	}, status)
	if err != nil {
		return fmt.Errorf("running %q in %s: %w", req.Args, req.Image, err)
	}
	return nil
}

func parsePlatform(s string) (ocispecs.Platform, error) {
	m := platformRE.FindStringSubmatch(s)
	if m == nil {
		return ocispecs.Platform{}, fmt.Errorf("platform %q is not os/arch[/variant]", s)
	}
	return ocispecs.Platform{OS: m[1], Architecture: m[2], Variant: m[3]}, nil
}

var (
	platformRE = regexp.MustCompile(`^([a-z0-9]+)/([a-z0-9_]+)(?:/([a-z0-9]+))?$`)
	exitRE     = regexp.MustCompile(`exit code: (\d+)`)
)

// ExitCode returns the exit code of a failed process in a BuildKit error
// (a RUN step of a test stage, or Exec's command) and whether there was
// one: from BuildKit's typed error when it came through, else from the
// "exit code: N" its message carries (the last one, the innermost).
func ExitCode(err error) (int, bool) {
	if err == nil {
		return 0, false
	}
	var ee *gwpb.ExitError
	if errors.As(err, &ee) && ee.ExitCode != 0 {
		return int(ee.ExitCode), true
	}
	m := exitRE.FindAllStringSubmatch(err.Error(), -1)
	if m == nil {
		return 0, false
	}
	n, convErr := strconv.Atoi(m[len(m)-1][1])
	if convErr != nil {
		return 0, false
	}
	return n, true
}
