# The snapsync processes' image for docker-compose.yml (production-shaped stack).
# bookworm pinned: its mariadb-client (10.11) is the client the export's client-stream path runs
# (sinks/source_reader.py), the version the tests use here.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends mariadb-client gnupg age && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY connectors connectors
COPY control control
COPY streams streams
COPY sinks sinks
COPY snapsync snapsync
# pymysql[rsa] (cryptography) comes with the dependencies: MySQL 8's default
# caching_sha2_password needs it on a connection without TLS.
RUN pip install --no-cache-dir .
# SNAPSYNC_HOME: owned by the process user, private (packages hold PHI). A new named volume
# mounted here starts with this owner and mode.
RUN mkdir -p /var/lib/snapsync/deliveries && chown -R 10001:10001 /var/lib/snapsync && chmod -R 0700 /var/lib/snapsync
ENV SNAPSYNC_HOME=/var/lib/snapsync
USER 10001
ENTRYPOINT ["snapsync"]
