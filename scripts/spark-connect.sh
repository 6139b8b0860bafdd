#!/usr/bin/env bash
# Starts or stops a local Apache Spark Connect server for the Spark mining
# engine's tests and benchmarks (make spark-up / make spark-down).
#
#   scripts/spark-connect.sh up     install pyspark into $SPARK_VENV (once), start
#                                   the server with --master local[2] on
#                                   127.0.0.1:$SPARK_CONNECT_PORT, wait until it
#                                   answers, and print the sc:// URL
#   scripts/spark-connect.sh down   stop the server started by `up`
#   scripts/spark-connect.sh url    print the sc:// URL
#
# Environment: SPARK_CONNECT_PORT (default 15002), SPARK_VENV (default .spark/venv,
# git-ignored), PYSPARK_VERSION (default 4.3.0), SPARK_MASTER (default local[2]),
# SPARK_UP_TIMEOUT_S (default 180). Needs python3 (with venv) and Java 17.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${SPARK_CONNECT_PORT:-15002}"
VENV="${SPARK_VENV:-.spark/venv}"
VERSION="${PYSPARK_VERSION:-4.3.0}"
MASTER="${SPARK_MASTER:-local[2]}"
TIMEOUT="${SPARK_UP_TIMEOUT_S:-180}"
STATE=".spark/run-$PORT"
PIDFILE="$STATE/connect.pid"
LOG="$STATE/connect.log"
URL="sc://127.0.0.1:$PORT"

answers() { # the port accepts TCP connections
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

running_pid() {
	[ -f "$PIDFILE" ] || return 1
	local pid
	pid="$(cat "$PIDFILE")"
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

install() {
	if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$VERSION')" 2>/dev/null; then
		return
	fi
	command -v java >/dev/null || { echo "spark-connect: java not found (Spark $VERSION needs Java 17+)" >&2; exit 1; }
	echo "spark-connect: installing pyspark==$VERSION into $VENV" >&2
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install --quiet --disable-pip-version-check "pyspark==$VERSION"
}

up() {
	if pid="$(running_pid)"; then
		echo "spark-connect: already running (pid $pid) at $URL" >&2
		echo "$URL"
		return
	fi
	if answers; then
		echo "spark-connect: port $PORT on 127.0.0.1 is taken by another process; set SPARK_CONNECT_PORT" >&2
		exit 1
	fi
	install
	local home
	home="$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
	mkdir -p "$STATE"
	local abs
	abs="$(cd "$STATE" && pwd)"
	# start-connect-server.sh daemonises through spark-daemon.sh; run the
	# class in the foreground under our own pid instead (SPARK_NO_DAEMONIZE)
	# so that the pidfile is exact and `down` stops exactly this server.
	SPARK_HOME="$home" SPARK_NO_DAEMONIZE=1 SPARK_LOG_DIR="$abs" SPARK_PID_DIR="$abs" \
		SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_DIRS="$abs/tmp" \
		nohup "$home/sbin/start-connect-server.sh" --master "$MASTER" \
		--conf spark.connect.grpc.binding.address=127.0.0.1 \
		--conf spark.connect.grpc.binding.port="$PORT" \
		--conf spark.driver.bindAddress=127.0.0.1 \
		--conf spark.driver.host=127.0.0.1 \
		--conf spark.ui.enabled=false \
		--conf spark.sql.session.timeZone=UTC \
		--driver-memory "${SPARK_DRIVER_MEMORY:-2g}" \
		>"$LOG" 2>&1 &
	echo $! >"$PIDFILE"
	local waited=0
	until answers; do
		if ! running_pid >/dev/null; then
			echo "spark-connect: the server exited while starting; last lines of $LOG:" >&2
			tail -n 30 "$LOG" >&2
			rm -f "$PIDFILE"
			exit 1
		fi
		if [ "$waited" -ge "$TIMEOUT" ]; then
			echo "spark-connect: no answer on 127.0.0.1:$PORT after ${TIMEOUT}s; log: $LOG" >&2
			down
			exit 1
		fi
		sleep 1
		waited=$((waited + 1))
	done
	echo "spark-connect: up at $URL after ${waited}s (pid $(cat "$PIDFILE"), log $LOG)" >&2
	echo "$URL"
}

down() {
	local pid
	if ! pid="$(running_pid)"; then
		rm -f "$PIDFILE"
		echo "spark-connect: not running on port $PORT" >&2
		return
	fi
	# The pid is the launcher's; the JVM is its child (or itself after exec).
	local kids
	kids="$(pgrep -P "$pid" || true)"
	kill "$pid" $kids 2>/dev/null || true
	for _ in $(seq 1 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
	done
	kill -9 "$pid" $kids 2>/dev/null || true
	rm -f "$PIDFILE"
	echo "spark-connect: stopped (pid $pid)" >&2
}

case "${1:-}" in
up) up ;;
down) down ;;
url) echo "$URL" ;;
install) install ;;
*) echo "usage: $0 up|down|url|install" >&2; exit 2 ;;
esac
