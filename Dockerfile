# The lrs server. Build: docker build -t lrs .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin lrs

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/lrs lrs && mkdir -p /var/lib/lrs && chown lrs /var/lib/lrs
COPY --from=build /src/target/release/lrs /usr/local/bin/lrs
USER lrs
ENV LRS_DATA_DIR=/var/lib/lrs LRS_LISTEN=0.0.0.0:8080 LRS_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["lrs"]
CMD ["serve"]
