# Portcullis container image: a release build on Debian, run as an unprivileged user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked && strip target/release/portcullis

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/portcullis --create-home portcullis \
    && install -d -o portcullis -g portcullis /var/lib/portcullis/audit-journal
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
USER portcullis
WORKDIR /var/lib/portcullis
ENV PORTCULLIS_LISTEN=0.0.0.0:8080
# Mount a volume here: the audit journal must survive a container restart.
ENV PORTCULLIS_AUDIT_JOURNAL_DIR=/var/lib/portcullis/audit-journal
VOLUME /var/lib/portcullis/audit-journal
EXPOSE 8080
ENTRYPOINT ["portcullis"]
CMD ["serve"]
