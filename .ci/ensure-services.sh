#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) are up: start them if
# installed and stopped, install them from Debian's packages if missing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 90); do
    if port_open "$port"; then echo "$name is up on 127.0.0.1:$port"; return 0; fi
    sleep 1
  done
  echo "$name did not come up on 127.0.0.1:$port" >&2
  return 1
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# PostgreSQL
if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "PostgreSQL is not installed: installing it from Debian's packages"
    apt_install postgresql
  fi
  version=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
wait_port 5432 PostgreSQL
# Trust auth for local test users is the machine's setup; make sure the postgres role answers.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  echo "PostgreSQL answers but user postgres cannot log in over TCP without a password;" >&2
  echo "set TALK_TEST_DATABASE_URL to a URL with rights to create databases." >&2
fi

# RabbitMQ
if ! port_open 5672; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is not installed: installing it from Debian's packages"
    apt_install rabbitmq-server
  fi
  rabbitmq-server -detached || true
fi
wait_port 5672 RabbitMQ
if command -v rabbitmqctl >/dev/null 2>&1; then
  rabbitmqctl await_startup >/dev/null 2>&1 || true
fi
