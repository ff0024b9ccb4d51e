# Shared by scripts/up and scripts/test: prerequisite checks with messages that say what to do.

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/namaskah}"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"

fail() {
    echo "✗ $*" >&2
    exit 1
}

# host and port out of a URL such as scheme://user:pass@host:port/path
host_port() {
    local rest="${1#*://}"
    rest="${rest#*@}"
    rest="${rest%%/*}"
    echo "$rest"
}

port_open() {
    local host="${1%:*}" port="${1##*:}"
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

require_cargo() {
    command -v cargo >/dev/null 2>&1 ||
        fail "cargo is missing. Install Rust: curl https://sh.rustup.rs -sSf | sh"
}

require_postgres() {
    local target
    target="$(host_port "$DATABASE_URL")"
    port_open "$target" || fail "PostgreSQL is not reachable at $target (DATABASE_URL).
  Start it: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start   (Debian)
            brew services start postgresql                                           (macOS)
            docker compose up -d postgres                                            (Docker)"
}

# The tests share rate limits between two API instances through Redis.
require_redis() {
    local target
    target="$(host_port "${TEST_REDIS_URL:-redis://127.0.0.1:6379}")"
    port_open "$target" || fail "Redis is not reachable at $target (TEST_REDIS_URL).
  Start it: redis-server --daemonize yes          (Debian: apt-get install redis-server)
            brew services start redis            (macOS)"
}

require_rabbitmq() {
    local target
    target="$(host_port "$AMQP_URL")"
    port_open "$target" || fail "RabbitMQ is not reachable at $target (AMQP_URL).
  Start it: rabbitmq-server -detached            (Debian)
            brew services start rabbitmq         (macOS)
            docker compose up -d rabbitmq        (Docker)"
}
