#!/usr/bin/env bash
# Stop the test cluster that tests/slurm/start.sh started.
#
# Usage: tests/slurm/stop.sh RUN_DIR
#
# Cancels the jobs left on the cluster, then stops each daemon listed in
# RUN_DIR/pids by its PID (SIGTERM, then SIGKILL after 10 seconds), in reverse
# start order, and removes /etc/slurm/slurm.conf if start.sh wrote it.
# Safe to run after a failed or partial start, and more than once.
set -uo pipefail
# The daemons and munged live in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

readonly CONF=/etc/slurm/slurm.conf
readonly MARKER="# written by iotsynth tests/slurm/start.sh"
readonly GRACE_S=10

log() { echo "stop.sh: $*" >&2; }

# The cluster is private to the test, so every job on it belongs to the test.
cancel_jobs() {
    local pid
    pid="$(awk '$1 == "slurmctld" {print $2}' "$pids_file")"
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        return
    fi
    squeue --noheader --format=%i 2>/dev/null | xargs --no-run-if-empty scancel || true
    local waited=0
    while [[ -n "$(squeue --noheader --states=PENDING,RUNNING,COMPLETING 2>/dev/null)" ]]; do
        if ((waited >= GRACE_S)); then
            log "jobs still on the cluster after ${GRACE_S}s:"
            squeue >&2 || true
            return
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

stop_pid() {
    local name="$1" pid="$2"
    # A PID whose process has another name was reused after our daemon exited.
    if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]]; then
        log "$name (PID $pid) already exited"
        return
    fi
    kill -TERM "$pid"
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= GRACE_S * 10)); then
            log "$name (PID $pid) ignored SIGTERM for ${GRACE_S}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            return
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    log "stopped $name (PID $pid)"
}

main() {
    if (($# != 1)); then
        echo "usage: $0 RUN_DIR" >&2
        exit 2
    fi
    pids_file="$1/pids"
    if [[ ! -f "$pids_file" ]]; then
        log "no $pids_file; nothing to stop"
    else
        cancel_jobs
        local name pid
        # Reverse order: slurmd, then slurmctld, then munged.
        while read -r name pid; do
            [[ -n "${pid:-}" ]] && stop_pid "$name" "$pid"
        done < <(tac "$pids_file")
    fi

    if [[ -f "$CONF" ]] && grep -qF "$MARKER" "$CONF"; then
        rm -f "$CONF"
        log "removed $CONF"
    fi
}

main "$@"
