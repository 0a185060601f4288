#!/usr/bin/env bash
# Runs the enclave image in Docker on this machine, with a configuration signed here.
#
#   scripts/run-docker.sh          start (a previous container of the same name is stopped and replaced;
#                                  its volumes, i.e. keys and database, are kept)
#   scripts/run-docker.sh stop     stop and remove the container (volumes kept)
#   scripts/run-docker.sh purge    stop and remove the container and its two volumes
#
# Environment (all optional):
#   IMAGE                 image to run (default enclave:latest; scripts/build-image.sh makes it)
#   NAME                  container name, also the volumes' prefix (default enclave)
#   CONFIG                configuration to run (default configuration.example.json); a copy is
#                         edited (see below), signed and mounted read-only
#   KEY                   private key that signs it (default: the INSECURE development key, which
#                         an image built with the default key trusts)
#   PUSHGATEWAY_URL       push metrics here (as seen from inside the container, e.g.
#                         http://host.docker.internal:9091); replaces telemetry.targets
#   VICTORIAMETRICS_URL   same for VictoriaMetrics (http://host.docker.internal:8428; the import
#                         path /api/v1/import/prometheus is appended when missing)
#   HOST_PORT_OFFSET      publish every port at <port + offset> on 127.0.0.1 (default 0)
#   STOP_TIMEOUT          seconds `docker stop` waits before SIGKILL (default 60)
#   FOLLOW=1              follow the container's log after starting
#
# The copy of the configuration gets `ports.listenHost` and `priceAggregatorConfig.host` set to
# 0.0.0.0: inside the container the HTTP endpoints must listen on the container's interface for
# Docker to publish them (on the host they are published on 127.0.0.1 only). In a TEE, keep the
# default 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ensure.sh
. scripts/lib/ensure.sh
# shellcheck source=scripts/lib/say.sh
. scripts/lib/say.sh

image="${IMAGE:-enclave:latest}"
name="${NAME:-enclave}"
config="${CONFIG:-configuration.example.json}"
key="${KEY:-scripts/dev-keys/INSECURE-DEV-ONLY.configuration.key}"
offset="${HOST_PORT_OFFSET:-0}"
stop_timeout="${STOP_TIMEOUT:-60}"
secrets_volume="$name-secrets"
data_volume="$name-pgdata"
workdir="$PWD/.local/docker/$name"

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon"
[[ "$offset" =~ ^[0-9]+$ ]] || die "HOST_PORT_OFFSET must be a number"
[[ "$stop_timeout" =~ ^[0-9]+$ ]] || die "STOP_TIMEOUT must be a number of seconds"

container_exists() { docker container inspect "$name" >/dev/null 2>&1; }

remove_container() {
    if container_exists; then
        say "stopping and removing the container $name"
        docker stop --time "$stop_timeout" "$name" >/dev/null
        say "$name exited with code $(docker inspect --format '{{.State.ExitCode}}' "$name")"
        docker rm "$name" >/dev/null
    fi
}

case "${1:-start}" in
    start) ;;
    stop)
        remove_container
        exit 0
        ;;
    purge)
        remove_container
        for v in "$secrets_volume" "$data_volume"; do
            if docker volume inspect "$v" >/dev/null 2>&1; then
                docker volume rm "$v" >/dev/null
                say "removed volume $v"
            fi
        done
        exit 0
        ;;
    *) die "usage: $0 [start|stop|purge]" ;;
esac

docker image inspect "$image" >/dev/null 2>&1 || die "no image $image: build it with scripts/build-image.sh"
[ -r "$config" ] || die "cannot read the configuration $config"
[ -r "$key" ] || die "cannot read the signing key $key"
ensure_apt jq

# --- the configuration: a copy, edited and signed ---------------------------------------------------
mkdir -p "$workdir"
signed="$workdir/configuration.json"
targets='[]'
if [ -n "${PUSHGATEWAY_URL:-}" ]; then
    targets="$(jq -c --arg url "${PUSHGATEWAY_URL%/}" '. + [{url: $url}]' <<<"$targets")"
fi
if [ -n "${VICTORIAMETRICS_URL:-}" ]; then
    url="${VICTORIAMETRICS_URL%/}"
    case "$url" in
        */api/v1/import/prometheus) ;;
        *) url="$url/api/v1/import/prometheus" ;;
    esac
    targets="$(jq -c --arg url "$url" '. + [{url: $url}]' <<<"$targets")"
fi
for url in "${PUSHGATEWAY_URL:-}" "${VICTORIAMETRICS_URL:-}"; do
    case "$url" in
        *://localhost[:/]* | *://localhost | *://127.* | *://\[::1\]*)
            say "warning: $url is the container itself; use http://host.docker.internal:<port> and make the receiver listen on the Docker bridge"
            ;;
    esac
done
jq --argjson targets "$targets" '
    .solution.ports.listenHost = "0.0.0.0"
    | .solution.priceAggregatorConfig.host = "0.0.0.0"
    | if ($targets | length) > 0 then .solution.telemetry.targets = $targets else . end
    | del(.solution.signature)
' "$config" >"$signed.tmp"
mv "$signed.tmp" "$signed"

# Signed and verified with the image's own binary: the signature is checked against the key the
# image trusts before anything starts.
say "signing $signed with $key"
run_tool() {
    docker run --rm --network none --user "$(id -u):$(id -g)" --entrypoint /init \
        --mount "type=bind,src=$workdir,dst=/work" \
        --mount "type=bind,src=$(realpath "$key"),dst=/signing.key,readonly" \
        "$image" "$@"
}
run_tool config sign --key /signing.key /work/configuration.json >&2
run_tool config verify /work/configuration.json >/dev/null 2>"$workdir/verify.log" ||
    die "the image $image does not accept a configuration signed with $key: $(tail -1 "$workdir/verify.log")"

# --- ports -------------------------------------------------------------------------------------------
port_of() { jq -r "$1" "$signed"; }
aggregator_port="$(port_of '.solution.priceAggregatorConfig.port // 3000 | tonumber')"
supervisor_port="$(port_of '.solution.ports.supervisor // 3002 | tonumber')"
metrics_port="$(port_of '.solution.ports.processMetrics // 3003 | tonumber')"
alerts_port="$(port_of '.solution.ports.alerts // 3004 | tonumber')"
api_base="$(port_of '.solution.ports.nodeApiBase // 6600 | tonumber')"
total_nodes="$(port_of '.solution.totalNodes | tonumber')"
publish=()
publish_port() { publish+=(--publish "127.0.0.1:$(($1 + offset)):$1"); }
publish_port "$aggregator_port"
publish_port "$supervisor_port"
publish_port "$metrics_port"
publish_port "$alerts_port"
for ((i = 1; i <= total_nodes; i++)); do publish_port $((api_base + i)); done

# --- the container -----------------------------------------------------------------------------------
remove_container
docker volume create "$secrets_volume" >/dev/null
docker volume create "$data_volume" >/dev/null
say "starting $name from $image"
docker run --detach --name "$name" \
    --stop-timeout "$stop_timeout" \
    --security-opt no-new-privileges:true \
    --cap-drop NET_RAW --cap-drop MKNOD --cap-drop AUDIT_WRITE --cap-drop SYS_CHROOT \
    --cap-drop SETFCAP --cap-drop SETPCAP --cap-drop NET_BIND_SERVICE \
    --add-host host.docker.internal:host-gateway \
    --env "ENCLAVE_IMAGE_DIGEST=$(docker image inspect --format '{{.Id}}' "$image")" \
    --log-opt max-size=10m --log-opt max-file=3 \
    --mount "type=volume,src=$secrets_volume,dst=/sp/secrets" \
    --mount "type=volume,src=$data_volume,dst=/sp/postgresql/data" \
    --mount "type=bind,src=$signed,dst=/sp/configurations/configuration.json,readonly" \
    "${publish[@]}" \
    "$image" >/dev/null

host_port() { echo $(($1 + offset)); }
cat <<EOF
enclave container '$name' started from $image
  configuration   $signed (signed with $key)
  volumes         $secrets_volume -> /sp/secrets, $data_volume -> /sp/postgresql/data
  log             docker logs -f $name          (each line prefixed [<service>])
  services        docker exec $name /init status   (--check: exit 0 once all are up)
  health          docker inspect --format '{{.State.Health.Status}}' $name
  supervisor      curl -s 127.0.0.1:$(host_port "$supervisor_port")/healthz ; curl -s 127.0.0.1:$(host_port "$supervisor_port")/metrics
  aggregator      curl -s 127.0.0.1:$(host_port "$aggregator_port")/ ; curl -s '127.0.0.1:$(host_port "$aggregator_port")/quotes/batch?pairs=BTC-USD'
  process metrics curl -s 127.0.0.1:$(host_port "$metrics_port")/metrics
  alerter         curl -s 127.0.0.1:$(host_port "$alerts_port")/healthz ; /metrics   (only with an alert channel configured)
  nodes           curl -s 127.0.0.1:$(host_port $((api_base + 1)))/health  (node 1) … 127.0.0.1:$(host_port $((api_base + total_nodes)))/health (node $total_nodes); /v1/feeds
  node keys       docker exec $name /init keys show
  files           docker exec $name ls /var/log /run/service
  stop            docker stop $name   (clean stop: exit code 0)  or  $0 stop
EOF
if [ "${FOLLOW:-0}" = 1 ]; then
    exec docker logs -f "$name"
fi
