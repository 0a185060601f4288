#!/usr/bin/env bash
# Smoke test of the container image (not part of scripts/test.sh):
#
#   1. builds the image unless it exists (REBUILD=1 forces scripts/build-image.sh);
#   2. runs it with scripts/run-docker.sh (the example configuration signed by the development
#      key, fresh volumes, ports on 127.0.0.1 at an offset so nothing on this machine clashes);
#   3. waits, polling against a deadline, until `docker exec <c> /init status --check` passes
#      (PostgreSQL, node keys, aggregator, process metrics, every node), then checks the
#      supervisor's /healthz and the other endpoints from the host, the Docker health status,
#      and that PostgreSQL runs as `postgres`;
#   4. `docker stop` → exit code 0 within the grace period; starts the same container again
#      (existing cluster and keys) and stops it once more;
#   5. runs a container with a tampered configuration: it must exit 77 within seconds and
#      start nothing.
#
# Prints the image size, the boot time to all-ready and the idle memory (docker stats).
# Environment: IMAGE (default enclave:latest), REBUILD=1, BOOT_TIMEOUT (s, default 180),
# IDLE_SECONDS (default 15), KEEP=1 keeps the containers and volumes for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${IMAGE:-enclave:latest}"
boot_timeout="${BOOT_TIMEOUT:-180}"
idle_seconds="${IDLE_SECONDS:-15}"
stop_timeout=60
name="enclave-smoke-$$"
tampered="$name-tampered"
workdir="$PWD/.local/docker/$name"

say() { echo "smoke-image: $*" >&2; }
fail() {
    say "FAIL: $*"
    if docker container inspect "$name" >/dev/null 2>&1; then
        say "last lines of the container's log:"
        docker logs --tail 40 "$name" 2>&1 | sed 's/^/    /' >&2
    fi
    exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        say "KEEP=1: left containers $name, $tampered and their volumes"
        return
    fi
    docker rm -f "$name" "$tampered" >/dev/null 2>&1 || true
    docker volume rm "$name-secrets" "$name-pgdata" "$tampered-secrets" "$tampered-pgdata" >/dev/null 2>&1 || true
    rm -rf "$workdir"
}
trap cleanup EXIT

# --- 1. the image ---------------------------------------------------------------------------------
if [ "${REBUILD:-0}" = 1 ] || ! docker image inspect "$image" >/dev/null 2>&1; then
    say "building the image"
    IMAGE="${image%%:*}" scripts/build-image.sh >&2
fi
docker image inspect "$image" >/dev/null 2>&1 || fail "no image $image after the build"
image_size="$(docker image inspect --format '{{.Size}}' "$image")"

# --- 2. run it ------------------------------------------------------------------------------------------
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
offset=""
for candidate in 20000 21000 22000 23000 24000 25000; do
    busy=0
    for port in 3000 3002 3003 6601 6602 6603 6604 6605; do
        if in_use $((port + candidate)); then busy=1 && break; fi
    done
    if [ "$busy" = 0 ]; then offset="$candidate" && break; fi
done
[ -n "$offset" ] || fail "no free port range found"
port() { echo $(($1 + offset)); }

say "starting $name (ports on 127.0.0.1 at +$offset)"
started="$(now)"
NAME="$name" IMAGE="$image" HOST_PORT_OFFSET="$offset" STOP_TIMEOUT="$stop_timeout" \
    scripts/run-docker.sh >/dev/null
# The boot is measured from the container's start, not from the signing before it.
started_at="$(docker inspect --format '{{.State.StartedAt}}' "$name")"
started="$(date -d "$started_at" +%s.%N 2>/dev/null || echo "$started")"

# --- 3. all ready -------------------------------------------------------------------------------------
wait_ready() {
    local deadline=$((SECONDS + boot_timeout))
    until docker exec "$name" /init status --check >/dev/null 2>&1; do
        [ "$(docker inspect --format '{{.State.Running}}' "$name")" = true ] ||
            fail "the container stopped during the boot (exit $(docker inspect --format '{{.State.ExitCode}}' "$name"))"
        if [ "$SECONDS" -ge "$deadline" ]; then
            docker exec "$name" /init status >&2 || true
            fail "not every service up within ${boot_timeout}s"
        fi
        sleep 0.2
    done
}
wait_ready
ready="$(now)"
boot_seconds="$(elapsed "$started" "$ready")"
say "all services up after ${boot_seconds}s"
docker exec "$name" /init status >&2

expect_http() { # URL → body; fails unless 200
    local body code
    body="$(curl -s -m 5 -w '\n%{http_code}' "$1")" || fail "cannot reach $1"
    code="${body##*$'\n'}"
    [ "$code" = 200 ] || fail "$1 answered $code: ${body%$'\n'*}"
    printf '%s' "${body%$'\n'*}"
}
[ "$(expect_http "127.0.0.1:$(port 3002)/healthz")" = ok ] || fail "supervisor /healthz is not 'ok'"
say "supervisor /healthz: ok"
expect_http "127.0.0.1:$(port 3003)/healthz" >/dev/null
expect_http "127.0.0.1:$(port 3000)/" | grep 'is running' >/dev/null || fail "aggregator / unexpected"
for i in 1 2 3 4 5; do
    expect_http "127.0.0.1:$(port $((6600 + i)))/health" | grep "\"node\":$i" >/dev/null || fail "node $i /health unexpected"
done
say "process-metrics /healthz, aggregator /, node 1..5 /health: 200"
all_up_metric="$(curl -s -m 5 "127.0.0.1:$(port 3002)/metrics" |
    awk '/^enclave_supervisor_boot_phase_seconds\{phase="all_up"\}/ { print $2 }')"

# Item 4 of the image's contract: PostgreSQL runs as postgres, the supervisor as root (PID 1).
docker exec "$name" sh -euc '
    pid="$(cat /run/service/postgres/pid)"
    [ "$(stat -c %U /proc/$pid)" = postgres ] || { echo "postgres runs as $(stat -c %U /proc/$pid)" >&2; exit 1; }
    [ "$(stat -c %U /proc/1)" = root ]
    [ "$(stat -c %U:%a /sp/postgresql/data)" = postgres:700 ]
    [ "$(stat -c %U:%a /run/postgresql)" = postgres:700 ]
    [ "$(stat -c %a /sp/secrets/postgres/superuser.password)" = 600 ]
    [ -s /var/log/postgres/current ] && [ -s /var/log/node-1/current ]
' || fail "owners and paths in the container are not as expected"
say "PostgreSQL runs as postgres, PID 1 as root; data, socket and secrets are private"

deadline=$((SECONDS + 40))
until [ "$(docker inspect --format '{{.State.Health.Status}}' "$name")" = healthy ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "Docker health status is $(docker inspect --format '{{.State.Health.Status}}' "$name"), not healthy"
    sleep 1
done
say "Docker health status: healthy"

say "idling ${idle_seconds}s before measuring memory"
sleep "$idle_seconds"
memory="$(docker stats --no-stream --format '{{.MemUsage}}' "$name")"
pids="$(docker stats --no-stream --format '{{.PIDs}}' "$name")"

# --- 4. clean stop, restart on the same volumes, stop again -------------------------------------------
stop_and_check() {
    local t0 t1 code
    t0="$(now)"
    docker stop --time "$stop_timeout" "$name" >/dev/null
    t1="$(now)"
    code="$(docker inspect --format '{{.State.ExitCode}}' "$name")"
    [ "$code" = 0 ] || fail "exit code $code after docker stop (0 expected)"
    stop_seconds="$(elapsed "$t0" "$t1")"
    awk -v s="$stop_seconds" -v limit="$stop_timeout" 'BEGIN { exit !(s < limit) }' ||
        fail "the stop took ${stop_seconds}s, the grace period is ${stop_timeout}s"
    docker logs "$name" 2>&1 | grep 'enclave stopped exit_code=0' >/dev/null || fail "no clean-stop line in the log"
    say "docker stop: exit 0 after ${stop_seconds}s"
}
stop_and_check
first_stop="$stop_seconds"

say "starting the same container again (existing cluster and keys)"
docker start "$name" >/dev/null
restarted_at="$(now)"
wait_ready
reboot_seconds="$(elapsed "$restarted_at" "$(now)")"
docker logs "$name" 2>&1 | grep 'created=false' >/dev/null || fail "the second boot did not keep the cluster"
say "all services up again after ${reboot_seconds}s"
stop_and_check

# --- 5. a tampered configuration ------------------------------------------------------------------------
say "tampered configuration: one value changed after signing"
jq '.solution.chainlinkNodeName = "tampered"' "$workdir/configuration.json" >"$workdir/tampered.json"
docker volume create "$tampered-secrets" >/dev/null
docker volume create "$tampered-pgdata" >/dev/null
t0="$(now)"
docker run --detach --name "$tampered" \
    --mount "type=volume,src=$tampered-secrets,dst=/sp/secrets" \
    --mount "type=volume,src=$tampered-pgdata,dst=/sp/postgresql/data" \
    --mount "type=bind,src=$workdir/tampered.json,dst=/sp/configurations/configuration.json,readonly" \
    "$image" >/dev/null
code="$(timeout 30 docker wait "$tampered")" || fail "the tampered container still runs after 30s"
tampered_seconds="$(elapsed "$t0" "$(now)")"
[ "$code" = 77 ] || fail "the tampered container exited $code, not 77"
log="$(docker logs "$tampered" 2>&1)"
grep -q 'configuration rejected, nothing started' <<<"$log" || fail "no rejection line in the log: $log"
! grep -q '^\[' <<<"$log" || fail "a service wrote to the log: $log"
changes="$(docker diff "$tampered" | grep -E ' /(run/service|var/log/|run/enclave|run/postgresql/)' || true)"
[ -z "$changes" ] || fail "the tampered container changed files: $changes"
for v in "$tampered-secrets" "$tampered-pgdata"; do
    docker run --rm --network none --entrypoint /bin/sh --mount "type=volume,src=$v,dst=/v" "$image" \
        -c '[ -z "$(ls -A /v)" ]' || fail "volume $v is not empty"
done
say "tampered configuration: exit 77 after ${tampered_seconds}s, nothing started, volumes untouched"

# --- figures -------------------------------------------------------------------------------------------
echo
echo "image $image: $((image_size / 1000 / 1000)) MB uncompressed"
echo "boot to all-ready (first boot, incl. initdb): ${boot_seconds}s (supervisor's all_up: ${all_up_metric:-?}s)"
echo "boot to all-ready (second boot, same volumes): ${reboot_seconds}s"
echo "idle memory after ${idle_seconds}s (docker stats): $memory, $pids pids"
echo "docker stop → exit 0: ${first_stop}s and ${stop_seconds}s"
echo "tampered configuration → exit 77: ${tampered_seconds}s"
echo "smoke-image: PASS"
