# syntax=docker/dockerfile:1
# One image for every role: `docker run namaskah api`, `… worker polling`, `… scheduler`.

# ---- build ------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependencies first, from the manifests alone, so this layer is reused until they change.
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml core/
COPY api/Cargo.toml api/
COPY workers/Cargo.toml workers/
COPY scheduler/Cargo.toml scheduler/
COPY dashboard/Cargo.toml dashboard/
COPY load-tests/Cargo.toml load-tests/
RUN for crate in core api workers scheduler dashboard load-tests; do \
        mkdir -p "$crate/src" && touch "$crate/src/lib.rs"; \
    done \
 && mkdir -p src tests/it && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > tests/it/main.rs \
 && cargo build --release --locked --bin namaskah \
 && rm -rf src tests */src target/release/.fingerprint/namaskah*

# Then the sources.
COPY . .
RUN touch src/main.rs src/lib.rs */src/lib.rs \
 && cargo build --release --locked --bin namaskah \
 && strip target/release/namaskah

# ---- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# ca-certificates for the providers' https; pg_dump/pg_restore (15, the server's version)
# for the scheduler's backups.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /app namaskah \
 && mkdir -p /backups && chown namaskah /backups
COPY --from=build /src/target/release/namaskah /usr/local/bin/namaskah
USER namaskah
WORKDIR /app
ENV LOG_FORMAT=json
ENTRYPOINT ["namaskah"]
CMD ["up"]
