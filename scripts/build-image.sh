#!/usr/bin/env bash
# Builds the enclave container image: the release binary (on this machine; or ENCLAVE_BINARY, for
# tests), then the image from image/Dockerfile. Tags <IMAGE>:<version> and <IMAGE>:latest, prints
# the image id and size.
#
#   scripts/build-image.sh
#   scripts/build-image.sh --runtime-only   only the image's first stage (the base image and
#                                           PostgreSQL: no key, no binary); scripts/test.sh runs
#                                           it while the binary compiles, and the full build
#                                           then reuses its layers
#
# Environment (all optional):
#   IMAGE                          image name (default enclave)
#   BASE_IMAGE                     Debian base (default debian:bookworm-slim)
#   CONFIGURATION_PUBLIC_KEY       the key the image trusts (base64 SPKI), or
#   CONFIGURATION_PUBLIC_KEY_FILE  a file holding it; default: the INSECURE development key
#                                  scripts/dev-keys/configuration.pub (a loud warning is printed)
#   SOURCE                         org.opencontainers.image.source (default: git remote origin)
#   DEBIAN_MIRROR                  mirror for debootstrap (default http://deb.debian.org/debian)
#   REBUILD_BASE=1                 re-create the locally made base image (see below)
#   SAVE=1                         also write target/image/<IMAGE>-<version>.tar.gz (docker save,
#                                  gzip) and print its SHA-256, for upload to a TEE platform
#   ENCLAVE_BINARY                 put this already built binary in the image instead of building
#                                  the release one: for tests only (scripts/test.sh gives it a
#                                  debug build to save the ~8-minute release build); it must pass
#                                  the same check, and the build says loudly it is no release
#
# The base image: BASE_IMAGE if it is already local, else `docker pull`; when no registry is
# reachable and BASE_IMAGE is debian:<suite>[-slim], the base is made here with debootstrap
# (installed if missing) + docker import, as enclave-base:<suite>, and reused by later builds.
#
# The binary is built on this machine: it must not need a newer glibc than the base image has
# (build on the base's Debian release or older). The build checks it by running it in the image.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ensure.sh
. scripts/lib/ensure.sh
# shellcheck source=scripts/lib/say.sh
. scripts/lib/say.sh

image="${IMAGE:-enclave}"
base_image="${BASE_IMAGE:-debian:bookworm-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

[ "$(uname -s)" = Linux ] || die "build on Linux: the binary is built on this machine and must be a Linux binary for the base image"
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is it running, may this user use it?)"

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

runtime_only=0
case "${1:-}" in
    "") ;;
    --runtime-only) runtime_only=1 ;;
    *) die "unknown argument '$1' (usage: $0 [--runtime-only])" ;;
esac

# Proxies of this shell reach the build's apt (they are not stored in the image, and as
# predefined build arguments they do not change the build cache's keys).
proxy_args=()
for proxy in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [ -n "${!proxy:-}" ]; then proxy_args+=(--build-arg "$proxy=${!proxy}"); fi
done

if [ "$runtime_only" = 0 ]; then
    # --- the configuration public key ---------------------------------------------------------
    public_key="${CONFIGURATION_PUBLIC_KEY:-}"
    if [ -z "$public_key" ]; then
        key_file="${CONFIGURATION_PUBLIC_KEY_FILE:-scripts/dev-keys/configuration.pub}"
        [ -r "$key_file" ] || die "cannot read the public key file $key_file"
        public_key="$(tr -d ' \r\n' <"$key_file")"
    fi
    [ -n "$public_key" ] || die "the configuration public key is empty"
    if [ "$public_key" = "$(tr -d ' \r\n' <scripts/dev-keys/configuration.pub)" ]; then
        say "WARNING: this image trusts the INSECURE development key (scripts/dev-keys/)."
        say "WARNING: anyone can sign a configuration for it; use it for local testing only."
        say "WARNING: for real use: CONFIGURATION_PUBLIC_KEY_FILE=<your configuration.pub> $0"
    fi

    # --- the binary -----------------------------------------------------------------------------
    if [ -n "${ENCLAVE_BINARY:-}" ]; then
        binary="$ENCLAVE_BINARY"
        [ -x "$binary" ] || die "ENCLAVE_BINARY: $binary is not an executable file"
        say "WARNING: the image gets $binary, not a release build (ENCLAVE_BINARY): for tests only"
    else
        say "building the release binary (cargo shows its progress; the first build takes minutes)"
        cargo build --release --locked
        binary="target/release/enclave"
    fi
    # The attested binary must carry no test-only code (synthetic quotes).
    scripts/check-release-binary.sh "$binary" || die "the binary $binary contains test support"
    version="$("$binary" --version | awk '{print $2}')"
    [ -n "$version" ] || die "cannot read the binary's version"
fi

# --- the base image ---------------------------------------------------------------------------
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# debootstrap + docker import, slimmed like Debian's official -slim images.
make_base() {
    local suite="$1" tag="$2"
    ensure_apt debootstrap debian-archive-keyring
    local dir
    dir="$(mktemp -d /var/tmp/enclave-base.XXXXXX)"
    # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
    trap "$sudo rm -rf '$dir'" EXIT
    say "creating the base image $tag with debootstrap ($suite from $mirror; takes a few minutes)"
    $sudo debootstrap --variant=minbase --force-check-gpg \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        "$suite" "$dir/rootfs" "$mirror" >&2
    $sudo bash -euo pipefail -s "$dir/rootfs" "$suite" <<'SLIM'
root="$1"
suite="$2"
# apt sources as in the official images: the release, its updates and security.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# The minimizing configuration of the official -slim images (debuerreotype).
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
printf 'Apt::AutoRemove::SuggestsImportant "false";\n' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
# What those excludes would have kept out, and what must not be in an image.
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/groff/* "$root"/usr/share/info/* \
    "$root"/usr/share/lintian/* "$root"/usr/share/linda/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/*
find "$root/var/log" -type f -delete
: >"$root/etc/machine-id"
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
SLIM
    local date
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    $sudo tar --numeric-owner --xattrs -C "$dir/rootfs" \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
        docker import \
            --change 'CMD ["bash"]' \
            --change "LABEL org.opencontainers.image.description=\"Debian $suite (debootstrap --variant=minbase, slimmed) made by scripts/build-image.sh\"" \
            --change "LABEL org.opencontainers.image.created=\"$date\"" \
            --message "debootstrap $suite $mirror" - "$tag" >/dev/null
    $sudo rm -rf "$dir"
    trap - EXIT
    say "base image $tag created"
}

resolve_base() {
    if image_exists "$base_image"; then
        echo "$base_image"
        return
    fi
    say "base image $base_image is not local; pulling it"
    if timeout 300 docker pull --quiet "$base_image" >&2; then
        echo "$base_image"
        return
    fi
    local suite
    case "$base_image" in
        debian:*) suite="${base_image#debian:}" && suite="${suite%-slim}" ;;
        *) die "cannot pull $base_image, and only debian:<suite>[-slim] can be made locally" ;;
    esac
    local tag="enclave-base:$suite"
    if image_exists "$tag" && [ "${REBUILD_BASE:-0}" != 1 ]; then
        say "no registry: using the locally made $tag (REBUILD_BASE=1 re-creates it)"
    else
        say "no registry: making $tag locally"
        make_base "$suite" "$tag" >&2
    fi
    echo "$tag"
}
base="$(resolve_base)"

if [ "$runtime_only" = 1 ]; then
    say "building the image's runtime stage on $base"
    context="target/image-runtime-context"
    rm -rf "$context"
    mkdir -p "$context"
    cp image/.dockerignore "$context/.dockerignore"
    docker build --force-rm --build-arg "BASE_IMAGE=$base" "${proxy_args[@]}" \
        --target runtime -f image/Dockerfile "$context" >&2
    exit 0
fi

# --- glibc: the binary must run on the base ------------------------------------------------------
host_suite="$( (. /etc/os-release && echo "${VERSION_CODENAME:-}") 2>/dev/null || true)"
case "$base" in
    *"$host_suite"*) ;;
    *) say "note: building on '${host_suite:-unknown}' for base $base; the binary's glibc needs are checked in the image" ;;
esac

# --- the build context ----------------------------------------------------------------------------
context="target/image-context"
rm -rf "$context"
mkdir -p "$context"
cp image/.dockerignore "$context/.dockerignore"
cp "$binary" "$context/enclave"
cp -R s6-rc.d "$context/s6-rc.d"

revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    revision="$revision-dirty"
fi
source_url="${SOURCE:-$(git remote get-url origin 2>/dev/null || echo unknown)}"

say "building $image:$version on $base"
build_args=(
    --build-arg "BASE_IMAGE=$base"
    --build-arg "CONFIGURATION_PUBLIC_KEY=$public_key"
    --build-arg "VERSION=$version"
    --build-arg "REVISION=$revision"
    --build-arg "SOURCE=$source_url"
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
)
build_args+=("${proxy_args[@]}")
previous="$(docker image inspect --format '{{.Id}}' "$image:$version" 2>/dev/null || true)"
docker build --force-rm "${build_args[@]}" -f image/Dockerfile -t "$image:$version" -t "$image:latest" "$context" >&2
# The image this build replaced, now untagged: removed unless a container still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$image:$version")" ] &&
    [ "$(docker image inspect --format '{{len .RepoTags}}' "$previous" 2>/dev/null)" = 0 ]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
fi

# --- checks -----------------------------------------------------------------------------------------
say "checking the image"
docker run --rm --entrypoint /init "$image:$version" --version >/dev/null ||
    die "the binary does not run in the image (glibc newer than the base's? build on the base's Debian release)"
docker run --rm --entrypoint /bin/sh "$image:$version" -euc '
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null
    id postgres >/dev/null
    [ -s /etc/enclave/configuration.pub ]
    [ -x /etc/enclave/s6-rc.d/postgres/run ]
    [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null)" ] || { echo "package lists left in the image" >&2; exit 1; }
    for tool in gcc cc make cargo rustc; do
        ! command -v "$tool" >/dev/null || { echo "build tool $tool in the image" >&2; exit 1; }
    done
    [ ! -e /etc/ssl/private/ssl-cert-snakeoil.key ] || { echo "snakeoil private key in the image" >&2; exit 1; }
' || die "the image failed its checks"

id="$(docker image inspect --format '{{.Id}}' "$image:$version")"
size="$(docker image inspect --format '{{.Size}}' "$image:$version")"
digests="$(docker image inspect --format '{{join .RepoDigests " "}}' "$image:$version")"
echo "image:   $image:$version ($image:latest)"
echo "id:      $id"
echo "digest:  ${digests:-none yet (a registry digest exists once the image is pushed)}"
echo "size:    $((size / 1000 / 1000)) MB ($size bytes, uncompressed)"
echo "binary:  sha256 $(sha256sum "$binary" | cut -d' ' -f1) (the identity's software.binarySha256)"
echo "base:    $base"
echo "key:     $public_key"
if [ "${SAVE:-0}" = 1 ]; then
    mkdir -p target/image
    archive="target/image/${image//\//_}-$version.tar.gz"
    say "writing $archive"
    docker save "$image:$version" | gzip -n >"$archive.tmp"
    mv "$archive.tmp" "$archive"
    echo "archive: $archive ($(($(stat -c %s "$archive") / 1000 / 1000)) MB)"
    echo "sha256:  $(sha256sum "$archive" | cut -d' ' -f1)"
fi
