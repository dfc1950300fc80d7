#!/usr/bin/env bash
# The quick start: start refit with embedded defaults, push a small busybox
# base image to its registry, create a task that builds on it, run it, then
# "patch" the base (push a new digest to the same tag) and watch refit
# notice the update and rebuild the image on the new base digest by itself.
# The server keeps running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

REFIT=${REFIT:-bin/refit}
DATA=${REFIT_DATA:-refit-data}
API=${REFIT_LISTEN:-127.0.0.1:7300}
REG=${REFIT_REGISTRY_LISTEN:-127.0.0.1:5000}
export REFIT_SERVER="http://$API"

# A short debounce so the demo does not wait the default 30 s.
"$REFIT" serve --data "$DATA" --listen "$API" --registry-listen "$REG" --debounce 2s &
server=$!
trap 'kill -INT $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 300); do
	kill -0 $server 2>/dev/null || { echo "refit serve exited; see the messages above" >&2; exit 1; }
	curl -fsS "$REFIT_SERVER/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
export REFIT_TOKEN=$(cat "$DATA/admin-token")

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "push a base image (busybox) to the embedded registry as $REG/base/busybox:1"
go run ./examples/pushbase -to "$REG/base/busybox:1"

step "refit apply -f examples/tasks.yaml"
sed "s#127.0.0.1:5000#$REG#" examples/tasks.yaml > "$DATA/tasks.yaml"
sed -i "s#dir: ./hello#dir: $PWD/examples/hello#" "$DATA/tasks.yaml"
"$REFIT" apply -f "$DATA/tasks.yaml"

step "refit dockerfile bases examples/hello --build-arg BASE=$REG/base/busybox:1"
"$REFIT" dockerfile bases examples/hello --build-arg BASE="$REG/base/busybox:1"

step "refit run hello --wait"
"$REFIT" run hello --wait --progress plain

step "the vendor patches the base: a new digest behind the same tag"
go run ./examples/pushbase -to "$REG/base/busybox:1" -patch "$(date -u +%Y%m%d%H%M%S)"

step "refit notices the update and queues a rebuild by itself"
run=""
for _ in $(seq 1 300); do
	run=$("$REFIT" runs --task hello --limit 1 -o json | sed -n 's/^    "id": "\(r-[0-9]*\)",$/\1/p' | head -n 1)
	[ -n "$run" ] && [ "$run" != "r-1" ] && break
	sleep 0.2
done
[ -n "$run" ] && [ "$run" != "r-1" ] || { echo "no rebuild was queued" >&2; exit 1; }
"$REFIT" runs "$run"

step "refit logs $run -f"
"$REFIT" logs "$run" -f --progress plain

step "refit bases"
"$REFIT" bases

step "refit explain hello"
"$REFIT" explain hello

step "refit runs"
"$REFIT" runs

cat <<MSG

The images are in refit's registry:
  curl -s http://$REG/v2/hello/tags/list
  $REFIT runs r-1          # commit, base digests, image digest of a run
  $REFIT logs r-1          # its BuildKit log

refit keeps running (Ctrl-C stops it). In another shell:
  export REFIT_SERVER=$REFIT_SERVER REFIT_TOKEN=\$(cat $DATA/admin-token)
MSG
wait $server
