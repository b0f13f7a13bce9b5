# Portcullis container image: a release build on Debian, run as an unprivileged user.
#
# Two layers of the build are cached apart: the dependencies (rebuilt only when
# Cargo.toml or Cargo.lock change) and Portcullis itself.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates/portcullis-verify/Cargo.toml crates/portcullis-verify/Cargo.toml
# Empty sources with the same manifests: compiles every dependency once.
RUN mkdir -p src crates/portcullis-verify/src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs crates/portcullis-verify/src/lib.rs \
    && echo 'fn main() {}' > build.rs \
    && cargo build --release --locked --bin portcullis \
    && rm -rf src crates/portcullis-verify/src build.rs
COPY build.rs ./
COPY migrations ./migrations
COPY crates/portcullis-verify/src ./crates/portcullis-verify/src
COPY src ./src
# touch: the stub build left newer artifacts for these crates than the sources' times.
RUN touch src/main.rs src/lib.rs crates/portcullis-verify/src/lib.rs build.rs \
    && cargo build --release --locked --bin portcullis && strip target/release/portcullis

FROM debian:bookworm-slim
# The volume directories exist in the image, owned by the runtime user and
# private to it: a named volume mounted there starts as a copy of them, so
# the first start can write the KEK, the journal and (SQLite) the database.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/portcullis --create-home portcullis \
    && install -d -m 0700 -o portcullis -g portcullis \
        /var/lib/portcullis/keys /var/lib/portcullis/audit-journal /var/lib/portcullis/data
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
USER 10001:10001
WORKDIR /var/lib/portcullis
# The same settings as tests/api/container.rs, which runs this entrypoint as
# an unprivileged user against empty volume directories (it reads this file).
ENV PORTCULLIS_LISTEN=0.0.0.0:8080 \
    PORTCULLIS_KEK_FILE=/var/lib/portcullis/keys/kek \
    PORTCULLIS_AUDIT_JOURNAL_DIR=/var/lib/portcullis/audit-journal \
    PORTCULLIS_DATABASE_URL=sqlite:///var/lib/portcullis/data/portcullis.db
# Mount volumes here: the KEK, the audit journal and the SQLite database must
# survive a container restart.
VOLUME ["/var/lib/portcullis/keys", "/var/lib/portcullis/audit-journal", "/var/lib/portcullis/data"]
EXPOSE 8080
# No shell, curl or /dev/tcp needed: the binary asks its own /readyz.
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=10 \
    CMD ["portcullis", "health"]
ENTRYPOINT ["portcullis"]
CMD ["serve"]
