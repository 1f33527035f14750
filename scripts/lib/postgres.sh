# shellcheck shell=bash
# Helpers sourced by scripts/run and scripts/test (bash, set -euo pipefail):
#   ensure_postgres      - local PostgreSQL answers on 127.0.0.1:5432 as role root
#                          (installs, starts and creates the role as needed)
#   ensure_database NAME - creates database NAME if it does not exist
#   ensure_alertmanager  - installs Debian's prometheus-alertmanager if missing

PG_HOST=127.0.0.1
PG_PORT=5432

# psql as role root on the maintenance database; never prompts for a password.
pg_root_psql() {
    psql -X -w -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U root -d postgres "$@"
}

pg_root_ok() {
    pg_root_psql -Atc 'select 1' >/dev/null 2>&1
}

# Newest installed major version (e.g. 15), or empty if none.
# shellcheck disable=SC2012  # version dirs are plain numbers
pg_version() {
    ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_up() {
    pg_isready -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1
}

# wait_until DESCRIPTION CMD...: retry CMD once a second for up to 30 s.
wait_until() {
    local what=$1 _
    shift
    for _ in $(seq 30); do
        "$@" && return 0
        sleep 1
    done
    echo "postgres: $what after 30s" >&2
    return 1
}

ensure_postgres() {
    local did="" ver hba
    if pg_up && pg_root_ok; then
        echo "postgres: already running on $PG_HOST:$PG_PORT as root"
        return 0
    fi

    if ! command -v pg_ctlcluster >/dev/null || [ -z "$(pg_version)" ]; then
        apt_install postgresql
        did+="installed postgresql; "
    fi
    ver=$(pg_version)

    if ! pg_up; then
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
        did+="started cluster $ver/main; "
    fi
    wait_until "not accepting connections" pg_up

    if ! pg_root_ok; then
        # Fresh install: role root is missing and 127.0.0.1 uses scram. Fix both.
        (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -c \
            "DO \$\$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') THEN
                 CREATE ROLE root SUPERUSER LOGIN;
               END IF;
             END \$\$;")
        hba=/etc/postgresql/$ver/main/pg_hba.conf
        if ! grep -q '^host all root 127.0.0.1/32 trust' "$hba"; then
            sed -i '1i host all root 127.0.0.1/32 trust' "$hba"   # first matching rule wins
        fi
        pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
        did+="created role root and trust rule; "
        wait_until "cannot connect as root" pg_root_ok
    fi
    echo "postgres: ${did}ready on $PG_HOST:$PG_PORT as root"
}

ensure_database() {
    local name=$1
    pg_root_psql -v name="$name" <<'SQL'
SELECT format('CREATE DATABASE %I', :'name')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SQL
}

ensure_alertmanager() {
    if [ ! -x /usr/bin/prometheus-alertmanager ]; then
        apt_install prometheus-alertmanager
        echo "alertmanager: installed prometheus-alertmanager"
    fi
}
