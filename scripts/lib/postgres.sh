# shellcheck shell=bash
# Helpers sourced by scripts/run, scripts/test, scripts/cluster and the load
# scripts (bash, set -euo pipefail):
#   ensure_postgres      - local PostgreSQL answers on 127.0.0.1:5432 as role root
#                          (installs, starts and creates the role as needed)
#   ensure_database NAME - creates database NAME if it does not exist
#   ensure_alertmanager  - installs Debian's prometheus-alertmanager if missing
#   ensure_chromium      - installs Debian's chromium and chromium-driver if missing
#   ensure_standby       - a streaming standby of it on 127.0.0.1:5433 (cluster
#                          <version>/standby, made with pg_basebackup)
#   stop_standby         - stops that standby (it replays all the primary's WAL)

PG_HOST=127.0.0.1
PG_PORT=5432
STANDBY_PORT=5433

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
        add_trust_rule "$hba" all
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

# Debian's Chromium and its ChromeDriver, for tests/page.rs and
# scripts/screenshots (a font, so that text renders the same everywhere).
ensure_chromium() {
    if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
        apt_install chromium chromium-driver fonts-dejavu-core
        echo "chromium: installed chromium and chromium-driver"
    fi
}

# standby_replicating CONDITION: the primary's pg_stat_replication row for
# the standby cluster meets CONDITION.
standby_replicating() {
    [ "$(pg_root_psql -Atc "SELECT count(*) FROM pg_stat_replication
         WHERE application_name = '$(pg_version)/standby' AND $1")" = 1 ]
}

# Whether the primary streams WAL to the standby cluster right now (a
# standby started after the primary recycled the WAL it needs is in
# recovery but stuck: not streaming).
standby_streaming() { standby_replicating "state = 'streaming'"; }

# add_trust_rule HBA DATABASE: a first line of HBA trusts role root from loopback.
add_trust_rule() {
    local hba=$1 rule="host $2 root 127.0.0.1/32 trust"
    grep -qx "$rule" "$hba" || sed -i "1i $rule" "$hba"   # first matching rule wins
}

ensure_standby() {
    local ver data conf
    ensure_postgres >/dev/null
    if standby_streaming; then
        echo "standby: already streaming on $PG_HOST:$STANDBY_PORT"
        return 0
    fi
    ver=$(pg_version)
    data=/var/lib/postgresql/$ver/standby
    conf=/etc/postgresql/$ver/standby
    add_trust_rule "/etc/postgresql/$ver/main/pg_hba.conf" replication
    pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
    if [ ! -d "$conf" ]; then
        pg_createcluster "$ver" standby --port "$STANDBY_PORT" >/dev/null
    fi
    pg_ctlcluster --skip-systemctl-redirect "$ver" standby stop 2>/dev/null || true
    rm -rf "$data"
    install -d -o postgres -g postgres -m 700 "$data"   # its parent may be root's
    # -R: standby.signal and primary_conninfo; -X stream: the WAL of the copy.
    (cd / && runuser -u postgres -- pg_basebackup -h "$PG_HOST" -p "$PG_PORT" -U root \
        -D "$data" -R -X stream -c fast)
    add_trust_rule "$conf/pg_hba.conf" all
    pg_ctlcluster --skip-systemctl-redirect "$ver" standby start
    wait_until "standby not streaming" standby_streaming
    echo "standby: made with pg_basebackup, streaming on $PG_HOST:$STANDBY_PORT"
}

# standby_caught_up [SECONDS]: the standby has replayed everything the
# primary had written when called (waits SECONDS at most, default 60).
standby_caught_up() {
    local lsn _ limit=${1:-60}
    lsn=$(pg_root_psql -Atc "SELECT pg_current_wal_lsn()")
    for _ in $(seq $((limit * 2))); do
        standby_replicating "replay_lsn >= '$lsn'" && return 0
        sleep 0.5
    done
    echo "standby: has not replayed up to $lsn within $limit s" >&2
    return 1
}

stop_standby() {
    pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" standby stop 2>/dev/null || true
}
