#!/usr/bin/env bash
# Start a one-node SLURM test cluster on 127.0.0.1: munged, slurmctld, slurmd.
#
# Usage: tests/slurm/start.sh RUN_DIR
#
# Needs root. Installs Debian's slurmctld, slurmd, slurm-client and munge with
# apt-get when they are missing, writes /etc/slurm/slurm.conf from
# slurm.conf.in beside this script, and keeps state and logs in RUN_DIR.
# Each daemon's PID goes to RUN_DIR/pids ("name pid" per line) right after it
# starts, so `tests/slurm/stop.sh RUN_DIR` stops exactly those daemons, also
# after a start that failed halfway.
#
# Environment: SLURMCTLD_PORT (default 6817), SLURMD_PORT (default 6818),
# MIN_JOB_AGE in seconds (default 300), DEF_MEM_PER_CPU in MB (default 1024).
set -euo pipefail
# The daemons and munged live in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

readonly CONF=/etc/slurm/slurm.conf
readonly MARKER="# written by iotsynth tests/slurm/start.sh"
readonly PACKAGES=(slurmctld slurmd slurm-client munge)
readonly READY_TIMEOUT_S=30

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "start.sh: $*" >&2; }
die() { echo "start.sh: error: $*" >&2; exit 1; }

# Poll a command once a second until it succeeds or the timeout passes.
wait_for() {
    local what="$1"
    shift
    local waited=0
    until "$@" >/dev/null 2>&1; do
        if ((waited >= READY_TIMEOUT_S)); then
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "$what ready after ${waited}s"
}

check_hostname() {
    local host address
    host="$(hostname -s)"
    address="$(getent ahostsv4 "$host" | awk 'NR == 1 {print $1}')"
    if [[ "$address" != 127.* ]]; then
        die "the short hostname '$host' resolves to '${address:-nothing}', not to a" \
            "127.x address. The test cluster listens on 127.0.0.1 only; add" \
            "'127.0.1.1 $host' to /etc/hosts or run on a machine where it resolves locally."
    fi
    echo "$host"
}

install_packages() {
    local missing=()
    local command
    for command in slurmctld slurmd sbatch munged; do
        command -v "$command" >/dev/null || missing+=("$command")
    done
    if ((${#missing[@]} == 0)); then
        return
    fi
    command -v apt-get >/dev/null ||
        die "missing ${missing[*]} and no apt-get to install ${PACKAGES[*]}"

    # Keep apt from starting the packaged services: this script starts its own
    # daemons and stops only the PIDs it recorded.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    log "installing ${PACKAGES[*]} with apt-get"
    local status=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends "${PACKAGES[@]}"
    } >"$run_dir/log/apt-get.log" 2>&1 || status=$?
    if ((made_policy)); then
        rm -f /usr/sbin/policy-rc.d
    fi
    if ((status != 0)); then
        tail -n 20 "$run_dir/log/apt-get.log" >&2
        die "apt-get failed with status $status; full output in $run_dir/log/apt-get.log"
    fi
}

write_conf() {
    local host="$1"
    if [[ -e "$CONF" ]] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script. Move it away" \
            "first: the test cluster must own that path, because srun inside a" \
            "job reads only the default path."
    fi

    # `slurmd -C` prints this machine's node line (CPUs, sockets, cores,
    # RealMemory); its second line is the uptime.
    local node_line
    node_line="$(slurmd -C | head -n 1)"
    [[ "$node_line" == NodeName=* ]] || die "unexpected output of 'slurmd -C': $node_line"

    mkdir -p /etc/slurm
    sed -e "s|@HOSTNAME@|$host|g" \
        -e "s|@RUN_DIR@|$run_dir|g" \
        -e "s|@SLURMCTLD_PORT@|${SLURMCTLD_PORT:-6817}|g" \
        -e "s|@SLURMD_PORT@|${SLURMD_PORT:-6818}|g" \
        -e "s|@MIN_JOB_AGE@|${MIN_JOB_AGE:-300}|g" \
        -e "s|@DEF_MEM_PER_CPU@|${DEF_MEM_PER_CPU:-1024}|g" \
        -e "s|@NODE_LINE@|$node_line|g" \
        "$script_dir/slurm.conf.in" >"$CONF"
    log "wrote $CONF for node '$host'"
}

munge_works() { munge -n </dev/null | unmunge >/dev/null; }

start_munged() {
    if munge_works 2>/dev/null; then
        log "munged already answers on its socket; using it and not stopping it later"
        return
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge

    # setpriv runs munged as the munge user in place, so $! is munged's PID.
    setpriv --reuid=munge --regid=munge --init-groups \
        munged --foreground </dev/null >>"$run_dir/log/munged.out" 2>&1 &
    echo "munged $!" >>"$run_dir/pids"
    wait_for munged munge_works ||
        die "munged did not answer within ${READY_TIMEOUT_S}s; see /var/log/munge/munged.log"
}

controller_up() { scontrol ping | grep -q 'is UP'; }
node_idle() { [[ "$(sinfo --noheader --nodes="$1" --format=%T)" == idle ]]; }

start_slurm() {
    local host="$1"
    slurmctld -D </dev/null >>"$run_dir/log/slurmctld.out" 2>&1 &
    echo "slurmctld $!" >>"$run_dir/pids"
    if ! wait_for slurmctld controller_up; then
        tail -n 20 "$run_dir/log/slurmctld.log" >&2 || true
        die "slurmctld did not answer within ${READY_TIMEOUT_S}s; see $run_dir/log/slurmctld.log"
    fi

    slurmd -D </dev/null >>"$run_dir/log/slurmd.out" 2>&1 &
    echo "slurmd $!" >>"$run_dir/pids"
    if ! wait_for "node $host" node_idle "$host"; then
        tail -n 20 "$run_dir/log/slurmd.log" >&2 || true
        sinfo --long --Node >&2 || true
        die "node $host did not become idle within ${READY_TIMEOUT_S}s; see $run_dir/log/slurmd.log"
    fi
}

main() {
    (($# == 1)) || die "usage: $0 RUN_DIR"
    [[ $EUID -eq 0 ]] || die "must run as root: it installs packages and starts system daemons"

    run_dir="$(mkdir -p "$1" && cd "$1" && pwd)"
    mkdir -p "$run_dir/log" "$run_dir/state" "$run_dir/spool"
    : >"$run_dir/pids"
    # The daemons and clients read the default path, which srun inside jobs needs.
    unset SLURM_CONF

    local host started
    host="$(check_hostname)"
    install_packages
    write_conf "$host"

    started=$SECONDS
    start_munged
    start_slurm "$host"
    log "cluster up in $((SECONDS - started))s; PIDs in $run_dir/pids"
}

main "$@"
