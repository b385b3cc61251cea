#!/usr/bin/env bash
# Private ClickHouse server for the demo and the tests.
#
#   scripts/clickhouse.sh start  [--port-http N] [--port-tcp N] [--dir DIR] [--owner-pid PID]
#   scripts/clickhouse.sh stop   [--dir DIR]
#   scripts/clickhouse.sh status [--dir DIR]
#
# `start` installs clickhouse-server when missing, writes a small config under DIR
# (default: <repo>/.run/clickhouse), launches the server in the background, waits until
# `SELECT 1` answers over HTTP and records its pid in DIR/clickhouse.pid. `stop` signals
# only that pid, so a system-wide ClickHouse is never touched. With --owner-pid, a
# watchdog stops the server once that process exits and deletes DIR, which is then a
# throwaway (tests use it: a test binary has no teardown hook, and a crashed test must
# leave neither a server nor its data behind).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
shift || true
dir="$repo/.run/clickhouse"
port_http=8123
port_tcp=""
owner_pid=""
while [ $# -gt 0 ]; do
    case "$1" in
        --port-http) port_http=$2; shift 2 ;;
        --port-tcp) port_tcp=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --owner-pid) owner_pid=$2; shift 2 ;;
        *) echo "clickhouse.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
# The native TCP port is unused by the collector but must not clash with another server.
[ -n "$port_tcp" ] || port_tcp=$((port_http + 1))
pidfile="$dir/clickhouse.pid"

server_bin() {
    for b in /usr/bin/clickhouse-server /usr/sbin/clickhouse-server; do
        [ -x "$b" ] && { echo "$b"; return 0; }
    done
    command -v clickhouse-server 2>/dev/null || return 1
}

install_if_missing() {
    server_bin >/dev/null && return 0
    echo "clickhouse.sh: installing clickhouse-server" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y clickhouse-server clickhouse-client >/dev/null 2>&1 || {
        apt-get update >/dev/null
        apt-get install -y clickhouse-server clickhouse-client >/dev/null
    }
}

running() {
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

ping() {
    # bash's /dev/tcp keeps curl optional.
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET /?query=SELECT%%201 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    local reply
    reply=$(cat <&3 2>/dev/null || true)
    exec 3>&-
    [[ "$reply" == *" 200 "* ]] && [[ "$reply" == *$'\n'1* ]]
}

write_config() {
    mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
    cat >"$dir/config.xml" <<XML
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/clickhouse-server.log</log>
        <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$port_http</http_port>
    <tcp_port>$port_tcp</tcp_port>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
    cat >"$dir/users.xml" <<XML
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
XML
}

start() {
    if running; then
        echo "clickhouse.sh: already running (pid $(cat "$pidfile")) in $dir"
        return 0
    fi
    install_if_missing
    local bin
    bin=$(server_bin)
    write_config
    "$bin" --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$pidfile"
    for _ in $(seq 1 300); do
        if ping "$port_http"; then
            [ -z "$owner_pid" ] || watchdog "$owner_pid" "$pid"
            echo "clickhouse.sh: ClickHouse ready on http://127.0.0.1:$port_http (pid $pid, dir $dir)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "clickhouse.sh: server exited during start; last log lines:" >&2
            tail -n 20 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
            rm -f "$pidfile"
            return 1
        fi
        sleep 0.1
    done
    echo "clickhouse.sh: no answer on port $port_http after 30 s" >&2
    kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    return 1
}

watchdog() {
    local owner=$1 pid=$2
    # Detached from our stdout so callers that read our output do not wait for it.
    nohup bash -c "while kill -0 $owner 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 0.5; done
        kill $pid 2>/dev/null; for _ in \$(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
        kill -9 $pid 2>/dev/null; rm -f '$pidfile'; rm -rf '$dir'" >/dev/null 2>&1 </dev/null &
}

stop() {
    if ! running; then
        echo "clickhouse.sh: not running (no live pid in $pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "clickhouse.sh: stopped pid $pid"; return 0; }
        sleep 0.1
    done
    echo "clickhouse.sh: pid $pid ignored SIGTERM for 15 s, sending SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

status() {
    if running; then
        echo "clickhouse.sh: running (pid $(cat "$pidfile")) in $dir"
    else
        echo "clickhouse.sh: not running ($dir)"
        return 3
    fi
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status [--port-http N] [--port-tcp N] [--dir DIR] [--owner-pid PID]" >&2; exit 2 ;;
esac
