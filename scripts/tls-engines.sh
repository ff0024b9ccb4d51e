# Sourced by scripts/test after lib.sh: the three engines again, each with TLS only, on ports
# of their own, for tests/it/tls.rs — so that the suite proves the pipeline runs over
# `sslmode=verify-full`, `amqps://` and `rediss://` against real servers:
#   PostgreSQL  cluster `namaskah_tls` on 127.0.0.1:5433, hostssl only (plain text refused)
#   RabbitMQ    node `namaskah-tls@localhost`, TLS listener on 127.0.0.1:5671, no plain one
#   Redis       TLS on 127.0.0.1:6390, no plain port
# Certificates come from a local CA made on the first run (openssl): the CA, a server
# certificate for localhost (not 127.0.0.1), a client certificate, and a second CA that
# signed nothing here (a client trusting only it must be refused). They live in one place
# per machine, not per checkout, because the engines outlive a checkout: every clone's test
# run uses the engines already running, and an engine that does not present a certificate
# of this CA (the directory was wiped, say) is restarted with the current one.
# Exports TEST_TLS_DIR, TEST_TLS_DATABASE_SERVER, TEST_TLS_AMQP_URL and TEST_TLS_REDIS_URL.

# As root, somewhere the engines' own users (postgres, rabbitmq) can read.
if [ "$(id -u)" = 0 ]; then
    TLS_DIR="${NAMASKAH_TLS_DIR:-/var/lib/namaskah-tls}"
else
    TLS_DIR="${NAMASKAH_TLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/namaskah-tls}"
fi
TLS_PG_PORT=5433
TLS_AMQP_PORT=5671
TLS_REDIS_PORT=6390

# Bumped when what the certificates hold changes, so that an older set is made anew.
TLS_CERTIFICATES_VERSION=2

make_tls_certificates() {
    [ "$(cat "$TLS_DIR/version" 2>/dev/null)" = "$TLS_CERTIFICATES_VERSION" ] && return 0
    ensure_command openssl "openssl (it makes the TLS tests' certificates)" "brew install openssl" openssl
    say "making a local CA and certificates for the TLS tests in $TLS_DIR (first run only)"
    mkdir -p "$TLS_DIR" && chmod 0755 "$TLS_DIR"
    rm -f "$TLS_DIR"/*.pem "$TLS_DIR"/*.key "$TLS_DIR"/*.csr "$TLS_DIR"/*.srl "$TLS_DIR"/*.ext
    (
        cd "$TLS_DIR"
        for ca in ca other-ca; do
            run_logged openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Namaskah test $ca" \
                -keyout "$ca.key" -out "$ca.pem"
        done
        # Valid for localhost only: a client that dials 127.0.0.1 must refuse it (host name).
        printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        for leaf in server client; do
            run_logged openssl req -newkey rsa:2048 -nodes -subj "/CN=$leaf" -keyout "$leaf.key" -out "$leaf.csr"
            run_logged openssl x509 -req -in "$leaf.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
                -days 3650 -extfile "$leaf.ext" -out "$leaf.pem"
        done
        chmod 0644 ./*.pem ./*.key
        echo "$TLS_CERTIFICATES_VERSION" >version
    )
}

# serves_our_certificate PORT [openssl s_client options…]: the engine on PORT presents a
# certificate of our CA for localhost.
serves_our_certificate() {
    local port="$1"
    shift
    port_open "127.0.0.1:$port" &&
        echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" "$@" -CAfile "$TLS_DIR/ca.pem" \
            -verify_return_error -verify_hostname localhost >/dev/null 2>&1
}

ensure_tls_postgres() {
    serves_our_certificate "$TLS_PG_PORT" -starttls postgres && return 0
    if on_macos || ! command -v pg_createcluster >/dev/null 2>&1 || ! can_be_root; then
        fail "the TLS tests need a second PostgreSQL cluster with TLS on port $TLS_PG_PORT; on Debian, as root: pg_createcluster $(ls /etc/postgresql 2>/dev/null | sort -V | tail -1) namaskah_tls -p $TLS_PG_PORT (scripts/tls-engines.sh does the rest)"
    fi
    local version config
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    config="/etc/postgresql/$version/namaskah_tls"
    if [ ! -d "$config" ]; then
        say "creating the PostgreSQL cluster namaskah_tls (TLS only) on port $TLS_PG_PORT (first run only)"
        run_logged as_root pg_createcluster "$version" namaskah_tls -p "$TLS_PG_PORT"
    fi
    # The server's key must belong to the server's user and be private.
    as_root install -o postgres -g postgres -m 0600 "$TLS_DIR/server.key" "$config/server.key"
    as_root install -o postgres -g postgres -m 0644 "$TLS_DIR/server.pem" "$config/server.pem"
    as_root install -o postgres -g postgres -m 0644 "$TLS_DIR/ca.pem" "$config/ca.pem"
    as_root tee "$config/conf.d/namaskah_tls.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
ssl = on
ssl_cert_file = '$config/server.pem'
ssl_key_file = '$config/server.key'
ssl_ca_file = '$config/ca.pem'
max_connections = 100
EOF
    as_root tee "$config/pg_hba.conf" >/dev/null <<EOF
local   all all                 peer
hostssl all all 127.0.0.1/32    trust
hostnossl all all 0.0.0.0/0     reject
EOF
    say "(re)starting the PostgreSQL cluster namaskah_tls on port $TLS_PG_PORT"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" namaskah_tls stop >>"$SETUP_LOG" 2>&1 || true
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" namaskah_tls start >>"$SETUP_LOG" 2>&1 ||
        fail "the TLS PostgreSQL cluster did not start: pg_ctlcluster --skip-systemctl-redirect $version namaskah_tls start"
    wait_for_port "PostgreSQL (TLS)" "127.0.0.1:$TLS_PG_PORT" 60
}

ensure_tls_rabbitmq() {
    serves_our_certificate "$TLS_AMQP_PORT" && return 0
    command -v rabbitmq-server >/dev/null 2>&1 || fail "RabbitMQ is missing (ensure_rabbitmq installs it)"
    local base="$TLS_DIR/rabbitmq"
    if port_open "127.0.0.1:$TLS_AMQP_PORT"; then
        say "stopping the TLS RabbitMQ node: its certificate is not the current CA's"
        rabbitmqctl -n namaskah-tls@localhost stop >>"$SETUP_LOG" 2>&1 || true
    fi
    mkdir -p "$base"
    cat >"$base/rabbitmq.conf" <<EOF
listeners.tcp = none
listeners.ssl.default = 127.0.0.1:$TLS_AMQP_PORT
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
loopback_users = none
EOF
    # No plugins: the default node's management listener holds 15672.
    echo '[].' >"$base/enabled_plugins"
    # Debian's rabbitmq-server runs the node as the rabbitmq user when started by root.
    if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
        chown -R rabbitmq:rabbitmq "$base"
    fi
    say "starting a RabbitMQ node with TLS only (namaskah-tls@localhost) on port $TLS_AMQP_PORT"
    RABBITMQ_NODENAME=namaskah-tls@localhost RABBITMQ_NODE_PORT=5674 RABBITMQ_DIST_PORT=25674 \
        RABBITMQ_CONFIG_FILE="$base/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" \
        RABBITMQ_MNESIA_BASE="$base/mnesia" RABBITMQ_LOG_BASE="$base/log" RABBITMQ_PID_FILE="$base/pid" \
        rabbitmq-server -detached >>"$SETUP_LOG" 2>&1 ||
        fail "the TLS RabbitMQ node did not start; its log is in $base/log"
    local waited
    for waited in $(seq 1 90); do
        port_open "127.0.0.1:$TLS_AMQP_PORT" && return 0
        sleep 1
    done
    fail "the TLS RabbitMQ node did not open 127.0.0.1:$TLS_AMQP_PORT within $waited s; its log is in $base/log"
}

ensure_tls_redis() {
    serves_our_certificate "$TLS_REDIS_PORT" && return 0
    if port_open "127.0.0.1:$TLS_REDIS_PORT"; then
        say "stopping the TLS Redis: its certificate is not the current CA's"
        redis-cli --tls --insecure -p "$TLS_REDIS_PORT" shutdown nosave >>"$SETUP_LOG" 2>&1 || true
        sleep 1
    fi
    say "starting Redis with TLS only on port $TLS_REDIS_PORT"
    redis-server --port 0 --tls-port "$TLS_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --tls-cert-file "$TLS_DIR/server.pem" --tls-key-file "$TLS_DIR/server.key" \
        --tls-ca-cert-file "$TLS_DIR/ca.pem" --tls-auth-clients optional \
        --daemonize yes --logfile "$TLS_DIR/redis.log" >>"$SETUP_LOG" 2>&1 ||
        fail "Redis with TLS did not start; its log is $TLS_DIR/redis.log"
    wait_for_port "Redis (TLS)" "127.0.0.1:$TLS_REDIS_PORT" 30
}

ensure_tls_engines() {
    make_tls_certificates
    ensure_tls_postgres
    ensure_tls_rabbitmq
    ensure_tls_redis
    export TEST_TLS_DIR="$TLS_DIR"
    export TEST_TLS_DATABASE_SERVER="postgres://postgres@localhost:$TLS_PG_PORT"
    export TEST_TLS_AMQP_URL="amqps://guest:guest@localhost:$TLS_AMQP_PORT/%2f"
    export TEST_TLS_REDIS_URL="rediss://localhost:$TLS_REDIS_PORT"
}
