# shellcheck shell=bash
# Helpers shared by start_slurm.sh and stop_slurm.sh (sourced, not run).

# running NAME PID: true if process PID exists, is called NAME and has not exited (a zombie
# waiting to be reaped counts as exited).
running() {
  [[ $2 =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$2/comm" 2>/dev/null) == "$1" ]] || return 1
  local stat
  stat=$(cat "/proc/$2/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}
stopped() { ! running "$@"; }

# alive NAME PIDFILE: true if PIDFILE names a running process called NAME (this guards against a
# stale pid file whose number now belongs to some other process).
alive() {
  [[ -s $2 ]] || return 1
  running "$1" "$(<"$2")"
}

# wait_for SECONDS COMMAND...: run COMMAND every 0.2 s until it succeeds (return 0) or SECONDS
# have passed (return 1).
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# stop_daemon NAME PIDFILE: stop the process of PIDFILE by its PID (never by name): TERM, then
# KILL if it is still there after 15 s. Waits for the process itself, not for its pid file (the
# daemons remove the file before they have finished exiting).
stop_daemon() {
  if ! alive "$1" "$2"; then
    rm -f "$2"
    return 0
  fi
  local pid
  pid=$(<"$2")
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for 15 stopped "$1" "$pid"; then
    echo "$1 (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 5 stopped "$1" "$pid" || true
  fi
  rm -f "$2"
}
