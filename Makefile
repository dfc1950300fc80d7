# refit's set-up and the two quick-start commands: `make run`, `make test`.
# Everything it installs is idempotent; it needs root on Debian (apt-get).

GO        ?= go
BIN       := bin
BUILDKITD := $(BIN)/buildkitd
BUILDCTL  := $(BIN)/buildctl
REFIT     := $(BIN)/refit

.PHONY: all deps packages test-packages build install run test test-quickstart test-short bench fuzz clean

all: build

# System packages running refit needs: runc for the managed BuildKit,
# busybox-static for the quick start's base image, git for git sources,
# curl for the quick start's health check.
packages:
	@missing=""; \
	command -v runc >/dev/null || missing="$$missing runc"; \
	test -x /bin/busybox || missing="$$missing busybox-static"; \
	command -v git >/dev/null || missing="$$missing git"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# What only the tests need besides: nats-server (the NATS sink's tests),
# PostgreSQL (the second pass), git's HTTP backend (source tests), rpm and
# rpmbuild (rpm databases for the catalog's tests). Debian's
# nats-server package enables a system service; the tests start their own
# server, so it is stopped and disabled again.
test-packages: packages
	@missing=""; \
	command -v nats-server >/dev/null || missing="$$missing nats-server"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -x /usr/lib/git-core/git-http-backend || missing="$$missing git"; \
	command -v rpmbuild >/dev/null || missing="$$missing rpm"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		if command -v systemctl >/dev/null && systemctl is-enabled nats-server >/dev/null 2>&1; then \
			systemctl disable --now nats-server >/dev/null 2>&1 || true; \
		fi; \
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
	$(GO) build -buildvcs=auto -o $(REFIT) ./cmd/refit

# Puts refit and the buildkitd it manages on PATH (PREFIX=/usr/local).
PREFIX ?= /usr/local
install: build $(BUILDKITD)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(REFIT) $(BUILDKITD) $(DESTDIR)$(PREFIX)/bin/

# Quick start: server with embedded defaults, a sample base image and a
# task built on it. Leaves the server running; Ctrl-C stops it.
run: deps build
	./scripts/quickstart.sh

# The whole test suite, with a real BuildKit, registry, git server and
# nats-server; then again on a real PostgreSQL for everything that keeps
# state (the tests start their own cluster on a loopback port).
PG_PACKAGES := ./internal/store/ ./internal/events/ ./internal/plan/ ./internal/lifecycle/ ./internal/index/ ./internal/server/ ./internal/serve/ ./cmd/refit/ ./internal/catalog/ ./internal/vulndb/ ./internal/gitpoll/

test: deps test-packages build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	REFIT_TEST_POSTGRES=1 $(GO) test -count=1 -timeout 30m $(PG_PACKAGES)
	$(MAKE) --no-print-directory test-quickstart

# The quick start, twice on one data directory (the second run must be as
# correct as the first), on ports of its own.
QS_DATA := $(shell mktemp -u /tmp/refit-quickstart.XXXXXX)
test-quickstart: deps build
	REFIT_DATA=$(QS_DATA) REFIT_LISTEN=127.0.0.1:17300 REFIT_REGISTRY_LISTEN=127.0.0.1:15000 ./scripts/quickstart.sh --once
	REFIT_DATA=$(QS_DATA) REFIT_LISTEN=127.0.0.1:17300 REFIT_REGISTRY_LISTEN=127.0.0.1:15000 ./scripts/quickstart.sh --once
	rm -rf $(QS_DATA)

test-short:
	$(GO) test -short ./...

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./internal/dockerfile/
	$(GO) test -run '^$$' -fuzz '^FuzzHostileNames$$' -fuzztime 60s ./internal/hook/
	$(GO) test -run '^$$' -fuzz '^FuzzWithin$$' -fuzztime 60s ./internal/source/
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime 60s ./internal/catalog/
	$(GO) test -run '^$$' -fuzz '^FuzzParseDpkgStatus$$' -fuzztime 60s ./internal/catalog/
	$(GO) test -run '^$$' -fuzz '^FuzzParseApkInstalled$$' -fuzztime 60s ./internal/catalog/
	$(GO) test -run '^$$' -fuzz '^FuzzParseOSRelease$$' -fuzztime 60s ./internal/catalog/
	$(GO) test -run '^$$' -fuzz '^FuzzReadRPM$$' -fuzztime 60s -fuzzminimizetime 0 ./internal/catalog/

clean:
	rm -rf $(BIN)
