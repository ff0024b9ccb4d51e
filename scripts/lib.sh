# Shared by scripts/up and scripts/test: start what is installed but down, install what is
# missing, and where neither is possible (no root, another OS) print the exact command and
# exit 2. Every step that does something prints one line first, so a long first run says
# what it is doing; a run with everything in place prints nothing.

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/namaskah}"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
REDIS_URL_FOR_TESTS="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"

# Where the output of installers goes; shown only when a step fails.
SETUP_LOG="${TMPDIR:-/tmp}/namaskah-setup.$$.log"

say() {
    echo "• $*"
}

fail() {
    echo "✗ $*" >&2
    exit 2
}

on_macos() {
    [ "$(uname -s)" = Darwin ]
}

# host:port out of a URL such as scheme://user:pass@host:port/path?query
host_port() {
    local rest="${1#*://}"
    rest="${rest#*@}"
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    echo "$rest"
}

port_open() {
    local host="${1%:*}" port="${1##*:}"
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# Only a service on this machine at its standard port is ours to start; anything else the
# person pointed us at on purpose, and we only say it is not there.
is_local_default() {
    local target="$1" default_port="$2" host
    host="${target%:*}"
    [ "${target##*:}" = "$default_port" ] &&
        { [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ] || [ "$host" = "[::1]" ]; }
}

wait_for_port() {
    local name="$1" target="$2" seconds="$3"
    for _ in $(seq 1 "$seconds"); do
        port_open "$target" && return 0
        sleep 1
    done
    fail "$name did not open $target within $seconds s; its log is under /var/log (Debian) — see what it says there"
}

# Runs a command with root rights: directly as root, through sudo where there is one.
# Returns 1 when neither is possible.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

can_be_root() {
    [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1
}

# Runs an installer quietly; on failure shows the end of what it said and exits 2.
run_logged() {
    if ! "$@" >>"$SETUP_LOG" 2>&1; then
        tail -n 20 "$SETUP_LOG" >&2
        fail "this failed: $* (full output in $SETUP_LOG)"
    fi
}

APT_UPDATED=""

# install_packages WHY BREW_COMMAND DEBIAN_PACKAGE... — Debian packages through apt-get as
# root or through sudo; elsewhere one line with the command to type, and exit 2.
install_packages() {
    local why="$1" brew_command="$2"
    shift 2
    if on_macos; then
        fail "$why is missing. Install it: $brew_command"
    fi
    if ! command -v apt-get >/dev/null 2>&1 || ! can_be_root; then
        fail "$why is missing. Install it as root: apt-get install $*"
    fi
    say "installing $* (first run only)…"
    if [ -z "$APT_UPDATED" ]; then
        run_logged as_root apt-get update -qq
        APT_UPDATED=yes
    fi
    run_logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

require_cargo() {
    command -v cargo >/dev/null 2>&1 ||
        fail "cargo is missing. Install Rust: curl https://sh.rustup.rs -sSf | sh"
}

ensure_postgres() {
    local target
    target="$(host_port "$DATABASE_URL")"
    port_open "$target" && return 0
    if ! is_local_default "$target" 5432; then
        fail "PostgreSQL is not reachable at $target (DATABASE_URL). Start it there, or unset DATABASE_URL for the local one on 127.0.0.1:5432"
    fi
    if on_macos; then
        fail "PostgreSQL is not running. Start it: brew services start postgresql"
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        # A fresh cluster asks for a password over TCP; DATABASE_URL has none, so installing
        # it is left to the person, who chooses how it authenticates.
        fail "PostgreSQL is not installed. Install it: apt-get install postgresql, then allow 'trust' for 127.0.0.1 in pg_hba.conf or put a password in DATABASE_URL"
    fi
    say "starting PostgreSQL"
    local version
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >>"$SETUP_LOG" 2>&1 ||
        fail "PostgreSQL did not start. Start it: pg_ctlcluster --skip-systemctl-redirect $version main start"
    wait_for_port PostgreSQL "$target" 60
}

ensure_rabbitmq() {
    local target
    target="$(host_port "$AMQP_URL")"
    if ! port_open "$target"; then
        if ! is_local_default "$target" 5672; then
            fail "RabbitMQ is not reachable at $target (AMQP_URL). Start it there, or unset AMQP_URL for the local one on 127.0.0.1:5672"
        fi
        if on_macos; then
            fail "RabbitMQ is not running. Start it: brew services start rabbitmq"
        fi
        command -v rabbitmq-server >/dev/null 2>&1 ||
            install_packages "RabbitMQ" "brew install rabbitmq" rabbitmq-server
        say "starting RabbitMQ"
        as_root rabbitmq-server -detached >>"$SETUP_LOG" 2>&1 ||
            fail "RabbitMQ did not start. Start it: rabbitmq-server -detached"
        wait_for_port RabbitMQ "$target" 90
        as_root rabbitmqctl await_startup >>"$SETUP_LOG" 2>&1 || true
    fi
    ensure_rabbitmq_management "$target"
}

# The dashboard shows queue depth and rates from RabbitMQ's management API (port 15672).
ensure_rabbitmq_management() {
    local host="${1%:*}"
    port_open "$host:15672" && return 0
    is_local_default "$1" 5672 || return 0
    command -v rabbitmq-plugins >/dev/null 2>&1 || return 0
    say "enabling RabbitMQ's management plugin (first run only)"
    as_root rabbitmq-plugins enable rabbitmq_management >>"$SETUP_LOG" 2>&1 ||
        fail "RabbitMQ's management plugin did not start. Enable it: rabbitmq-plugins enable rabbitmq_management"
    wait_for_port "RabbitMQ's management API" "$host:15672" 60
}

# The tests share rate limits between two API instances through Redis.
ensure_redis() {
    local target
    target="$(host_port "$REDIS_URL_FOR_TESTS")"
    port_open "$target" && return 0
    if ! is_local_default "$target" 6379; then
        fail "Redis is not reachable at $target (TEST_REDIS_URL). Start it there, or unset TEST_REDIS_URL for the local one on 127.0.0.1:6379"
    fi
    if on_macos; then
        fail "Redis is not running. Start it: brew services start redis"
    fi
    command -v redis-server >/dev/null 2>&1 ||
        install_packages "Redis" "brew install redis" redis-server
    say "starting Redis"
    redis-server --daemonize yes >>"$SETUP_LOG" 2>&1 ||
        fail "Redis did not start. Start it: redis-server --daemonize yes"
    wait_for_port Redis "$target" 30
}

ensure_nextest() {
    cargo nextest --version >/dev/null 2>&1 && return 0
    say "installing cargo-nextest (first run only, about 3 minutes)…"
    run_logged cargo install cargo-nextest --locked
}

# ensure_command COMMAND WHY BREW_COMMAND DEBIAN_PACKAGE...
ensure_command() {
    local command="$1" why="$2" brew_command="$3"
    shift 3
    command -v "$command" >/dev/null 2>&1 && return 0
    install_packages "$why" "$brew_command" "$@"
    command -v "$command" >/dev/null 2>&1 ||
        fail "$command is still missing after installing $*"
}

# Content fingerprint of files, to tell when an environment built from them is stale.
fingerprint() {
    cat "$@" | sha256sum | cut -d' ' -f1
}

# The Python tools live in virtual environments of the project's own, made on first use and
# reused while their requirement files are unchanged: schemathesis and the deployment
# checker's packages in target/venv, whose bin/ goes first on PATH (so `python3` and
# `schemathesis` in the tests are the environment's); the outside scanners (sqlmap,
# wapiti), whose dependencies clash with schemathesis's, in target/venv-scanners, found by
# the tests through SQLMAP and WAPITI.
PYTHON_ENV="$PWD/target/venv"
SCANNER_ENV="$PWD/target/venv-scanners"

# ensure_venv DIR WHAT REQUIREMENT_FILE…
ensure_venv() {
    local dir="$1" what="$2" wanted stamp="$1/.requirements.sha256"
    shift 2
    wanted="$(fingerprint "$@")"
    if [ ! -x "$dir/bin/python3" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        command -v python3 >/dev/null 2>&1 ||
            install_packages "Python 3" "brew install python" python3
        if [ ! -x "$dir/bin/python3" ]; then
            python3 -c 'import ensurepip, venv' 2>/dev/null ||
                install_packages "Python's venv module" "brew install python" python3-venv
            say "creating the Python environment in ${dir#"$PWD"/} (first run only)…"
            rm -rf "$dir"
            run_logged python3 -m venv "$dir"
        fi
        say "installing $what into ${dir#"$PWD"/}…"
        local arguments=()
        for file in "$@"; do arguments+=(-r "$file"); done
        run_logged "$dir/bin/python3" -m pip install --quiet --disable-pip-version-check "${arguments[@]}"
        echo "$wanted" >"$stamp"
    fi
}

ensure_python_env() {
    ensure_venv "$PYTHON_ENV" "schemathesis and the deployment checker's packages" \
        tests/requirements.txt deploy/requirements.txt
    ensure_venv "$SCANNER_ENV" "the outside scanners (sqlmap, wapiti)" tests/scanners.txt
    export PATH="$PYTHON_ENV/bin:$PATH"
    export SQLMAP="$SCANNER_ENV/bin/sqlmap" WAPITI="$SCANNER_ENV/bin/wapiti"
}

# playwright-core for the dashboard's browser test, installed from the lock file when
# node_modules is missing or the lock file changed since.
ensure_browser_modules() {
    local dir=tests/browser wanted stamp=tests/browser/node_modules/.package-lock.sha256
    wanted="$(fingerprint "$dir/package-lock.json")"
    [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] && return 0
    say "installing tests/browser's npm packages (npm ci)…"
    (cd "$dir" && run_logged npm ci --no-audit --no-fund --loglevel=error)
    echo "$wanted" >"$stamp"
}
