# Idempotent installers shared by the project's scripts. Source it; do not run it.
# Each function installs only what is missing, so a second run is quick and changes nothing.

# ensure_apt PACKAGE... — installs Debian packages that are not installed yet.
ensure_apt() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# ensure_rust_component NAME... — rustfmt, clippy, … via rustup when missing.
ensure_rust_component() {
    local c
    for c in "$@"; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
            echo "installing Rust component: $c" >&2
            rustup component add "$c" >&2
        fi
    done
}
