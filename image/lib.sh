# Shared by image/*.sh: root and tool checks, with the tools installed from Debian when missing.

need_root() {  # need_root WHAT
    if [ "$(id -u)" != 0 ]; then
        echo "$(basename "$0"): $1 needs root; run it as root or with sudo." >&2
        exit 1
    fi
}

ensure_tools() {  # ensure_tools TOOL... (each tool is also its Debian package's name)
    local missing=() tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$(basename "$0"): missing ${missing[*]}; install them (this script knows only apt-get)." >&2
        exit 1
    fi
    echo "installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || { echo "$(basename "$0"): apt-get install ${missing[*]} failed" >&2; exit 1; }
}
