#!/usr/bin/env bash
# Stop the private SLURM cluster that cluster/start_slurm.sh started in STATE_DIR.
#
#   cluster/stop_slurm.sh STATE_DIR
#
# Cancels the cluster's remaining jobs, stops slurmd, slurmctld and finally munged by the PIDs in
# their pid files (TERM, then KILL after 15 s; never by process name, so other SLURM or munge
# daemons on the machine are not touched) and removes /etc/slurm/slurm.conf if it is the link to
# this cluster's configuration. A link left in place while the controller is down would make
# every start of Snakemake with the SLURM executor plugin wait about 11 s for the controller.
# STATE_DIR itself (logs, job completion log, state) is kept. Safe to run when nothing runs.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi
# shellcheck source=cluster/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ ! -d $1 ]]; then
  echo "$0: $1 does not exist; nothing to stop" >&2
  exit 0
fi
STATE=$(cd "$1" && pwd -P)
CONF=$STATE/etc/slurm.conf
RUN=$STATE/run
SYSTEM_CONF=/etc/slurm/slurm.conf

# Jobs first: a job step (slurmstepd) is a process of its own and would outlive slurmd.
queue_empty() { [[ -z $(timeout 10 squeue --noheader --format=%i 2>/dev/null) ]]; }
if alive slurmctld "$RUN/slurmctld.pid" && [[ -f $CONF ]]; then
  export SLURM_CONF=$CONF
  jobs=$(timeout 10 squeue --noheader --format=%i 2>/dev/null || true)
  if [[ -n $jobs ]]; then
    # shellcheck disable=SC2086 # one argument per job id
    timeout 10 scancel $jobs || true
    wait_for 20 queue_empty || echo "$0: jobs still listed after scancel: $jobs" >&2
  fi
fi

stop_daemon slurmd "$RUN/slurmd.pid"
stop_daemon slurmctld "$RUN/slurmctld.pid"
# munged last: slurmd and slurmctld use it until they exit
stop_daemon munged "$RUN/munged.pid"

if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$CONF" ]]; then
  rm -f "$SYSTEM_CONF"
fi
echo "stopped the cluster of $STATE"
