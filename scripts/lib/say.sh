# say and die for the project's scripts: messages on stderr, prefixed with the script's name.
# Source it; do not run it.

_say_name="$(basename "$0" .sh)"

say() { echo "$_say_name: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}
