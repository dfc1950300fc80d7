# refit's set-up and the two quick-start commands: `make run`, `make test`.
# Everything it installs is idempotent; it needs root on Debian (apt-get).

GO        ?= go
BIN       := bin
BUILDKITD := $(BIN)/buildkitd
BUILDCTL  := $(BIN)/buildctl
REFIT     := $(BIN)/refit

.PHONY: all deps packages build run test test-short bench fuzz clean

all: build

# System packages the tests and the managed BuildKit need.
packages:
	@missing=""; \
	command -v runc >/dev/null || missing="$$missing runc"; \
	test -x /bin/busybox || missing="$$missing busybox-static"; \
	command -v git >/dev/null || missing="$$missing git"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v nats-server >/dev/null || missing="$$missing nats-server"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -x /usr/lib/git-core/git-http-backend || missing="$$missing git"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# buildkitd and buildctl are built from the BuildKit module pinned in go.mod.
$(BUILDKITD): go.mod go.sum
	@mkdir -p $(BIN)
	$(GO) build -o $@ github.com/moby/buildkit/cmd/buildkitd

$(BUILDCTL): go.mod go.sum
	@mkdir -p $(BIN)
	$(GO) build -o $@ github.com/moby/buildkit/cmd/buildctl

deps: packages $(BUILDKITD) $(BUILDCTL)

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(REFIT) ./cmd/refit

# Quick start: server with embedded defaults, a sample base image and a
# task built on it. Leaves the server running; Ctrl-C stops it.
run: deps build
	./scripts/quickstart.sh

# The whole test suite, with a real BuildKit, registry, git server and
# nats-server; then again on a real PostgreSQL for everything that keeps
# state (the tests start their own cluster on a loopback port).
PG_PACKAGES := ./internal/store/ ./internal/events/ ./internal/plan/ ./internal/index/ ./internal/server/ ./internal/serve/ ./cmd/refit/

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	REFIT_TEST_POSTGRES=1 $(GO) test -count=1 -timeout 30m $(PG_PACKAGES)

test-short:
	$(GO) test -short ./...

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./internal/dockerfile/
	$(GO) test -run '^$$' -fuzz '^FuzzHostileNames$$' -fuzztime 60s ./internal/hook/
	$(GO) test -run '^$$' -fuzz '^FuzzWithin$$' -fuzztime 60s ./internal/source/

clean:
	rm -rf $(BIN)
