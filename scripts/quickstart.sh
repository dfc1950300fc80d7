#!/usr/bin/env bash
# The quick start: start refit with embedded defaults, push a small busybox
# base image to its registry, create a task that builds on it, run it, then
# "patch" the base (push a new digest to the same tag) and watch refit
# notice the update and rebuild the image on the new base digest by itself.
#
# The server keeps running until Ctrl-C (a clean stop exits 0); with
# --once the script stops it after the demo instead (CI runs it that way,
# twice on the same data directory). Running it again on the same data is
# fine: it waits for the rebuild caused by the patch it has just pushed.
set -euo pipefail
cd "$(dirname "$0")/.."

once=false
case "${1:-}" in
--once) once=true ;;
"") ;;
*) echo "usage: $0 [--once]" >&2; exit 2 ;;
esac

REFIT=${REFIT:-bin/refit}
DATA=${REFIT_DATA:-refit-data}
API=${REFIT_LISTEN:-127.0.0.1:7300}
REG=${REFIT_REGISTRY_LISTEN:-127.0.0.1:5000}
export REFIT_SERVER="http://$API"
mkdir -p "$DATA"
LOG="$DATA/refit.log"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# The server's log goes to a file so it does not interleave with the
# demo's output. A short debounce so the demo does not wait the default 30 s.
step "refit serve (log: $LOG)"
"$REFIT" serve --data "$DATA" --listen "$API" --registry-listen "$REG" --debounce 2s >>"$LOG" 2>&1 &
server=$!
stop() {
	kill -INT "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
}
trap stop EXIT
trap 'echo; echo "stopping refit"; stop; exit 0' INT TERM

for _ in $(seq 1 600); do
	kill -0 "$server" 2>/dev/null || { echo "refit serve exited; its log:" >&2; tail -n 20 "$LOG" >&2; exit 1; }
	curl -fsS "$REFIT_SERVER/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
export REFIT_TOKEN=$(cat "$DATA/admin-token")

# pushbase prints "pushed REF@DIGEST"; digest_of keeps the digest.
digest_of() { sed -n 's/^pushed .*@\(sha256:[0-9a-f]*\)$/\1/p'; }

step "push a base image (busybox) to the embedded registry as $REG/base/busybox:1"
# On a second run the tag holds last run's patched base: leave it, since
# moving it back would itself be a base update and rebuild everything.
go run ./examples/pushbase -to "$REG/base/busybox:1" -keep

step "refit apply -f examples/tasks.yaml"
sed "s#127.0.0.1:5000#$REG#" examples/tasks.yaml >"$DATA/tasks.yaml"
sed -i "s#dir: ./hello#dir: $PWD/examples/hello#" "$DATA/tasks.yaml"
"$REFIT" apply -f "$DATA/tasks.yaml"

step "refit dockerfile bases examples/hello --build-arg BASE=$REG/base/busybox:1"
"$REFIT" dockerfile bases examples/hello --build-arg BASE="$REG/base/busybox:1"

step "refit run hello --wait"
"$REFIT" run hello --wait --progress plain

step "the vendor patches the base: a new digest behind the same tag"
patched=$(go run ./examples/pushbase -to "$REG/base/busybox:1" -patch "$(date -u +%Y%m%d%H%M%S%N)")
echo "$patched"
digest=$(digest_of <<<"$patched")
[ -n "$digest" ] || { echo "pushbase printed no digest" >&2; exit 1; }

step "refit notices the update and queues a rebuild by itself"
# The run to follow is the one whose cause is this very update (its new
# digest), not any earlier run of the task.
run=""
for _ in $(seq 1 300); do
	run=$("$REFIT" runs --task hello --limit 20 -o json | awk -v d="\"newDigest\": \"$digest\"" '
		/^    "id": "r-[0-9]+",$/ { id = $2; gsub(/[",]/, "", id) }
		index($0, d) { print id; exit }')
	[ -n "$run" ] && break
	sleep 0.2
done
[ -n "$run" ] || { echo "no rebuild was queued for the base update to $digest; see $LOG" >&2; exit 1; }
"$REFIT" runs "$run"

step "refit logs $run -f"
"$REFIT" logs "$run" -f --progress plain

step "refit bases"
"$REFIT" bases

step "refit explain hello"
"$REFIT" explain hello

step "refit runs"
"$REFIT" runs --task hello --limit 5

if $once; then
	state=$("$REFIT" runs "$run" -o json | sed -n 's/^  "state": "\(.*\)",$/\1/p')
	[ "$state" = succeeded ] || { echo "the rebuild $run ended $state; see $LOG" >&2; exit 1; }
	echo
	echo "quick start done: $run rebuilt hello on $digest"
	exit 0
fi

cat <<MSG

The images are in refit's registry:
  curl -s http://$REG/v2/hello/tags/list
  $REFIT runs $run          # commit, base digests, image digest of a run
  $REFIT logs $run          # its BuildKit log
The server's log is in $LOG.

refit keeps running (Ctrl-C stops it). In another shell:
  export PATH=\$PWD/bin:\$PATH      # or: make install
  export REFIT_SERVER=$REFIT_SERVER REFIT_TOKEN=\$(cat $DATA/admin-token)
MSG
wait "$server"
