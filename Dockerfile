# The snapsync workers' image for docker-compose.yml (production-shaped stack).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends mariadb-client && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY connectors connectors
COPY control control
COPY streams streams
COPY sinks sinks
COPY snapsync snapsync
RUN pip install --no-cache-dir .
USER 10001
ENTRYPOINT ["snapsync"]
