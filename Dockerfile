# Image of royalty-ingest for docker-compose.yml (build: docker build -t royalty-ingest .).
FROM rust:1.95-bookworm AS build
# OpenSSL: librdkafka (TLS, SASL/SCRAM) and sqlx (TLS to PostgreSQL) link it.
RUN apt-get update && apt-get install -y --no-install-recommends cmake libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin royalty-ingest

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/royalty-ingest /usr/local/bin/royalty-ingest
ENTRYPOINT ["royalty-ingest"]
CMD ["run"]
