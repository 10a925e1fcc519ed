#!/usr/bin/env bash
# make interop, sharded: the README's recipes on real batch engines, against a real nginx.
#
# - GNU parallel (Debian's parallel): the README's one-machine recipe, three shards at
#   once into one output directory; exact cover of a 200-file list, every file verified.
# - Slurm (Debian's slurm-wlm 22.05 and munge): a one-node cluster started here, with its
#   own config, state, logs and munge socket under this run's temp dir (no systemd; the
#   daemons are stopped by pid at the end). The README's sbatch script runs as an array
#   of 4 (`sbatch --array=1-4`): exact cover, all verified, and `fetchpool report` over the
#   4 reports counts what one unsharded run counts. Then the same array over a list with
#   one large file served slowly, in task 2's shard: `scancel` stops task 2 mid-transfer
#   (SIGTERM), which must leave a report line per job of its shard and the file's .part;
#   `scontrol requeue` runs task 2 again (the array's variables kept, so the same shard),
#   which must continue the part with Range (nginx's log) and end with the exact tree.
#
# Each check can be seen to fail: INTEROP_BREAK=sigkill kills task 2's processes with
# SIGKILL instead (no report lines), INTEROP_BREAK=skip-requeue leaves it cancelled (no
# Range); a broken shard function fails the cover checks.
#
# If Slurm cannot start here, the script says what failed, prints SLURM NOT RUN and goes
# on with GNU parallel only; it never skips silently. INTEROP_SLURM=require makes that a
# failure.
#
# usage: scale.sh BIN [WORKDIR]   (root; nginx, parallel, slurm-wlm, munge, python3)
set -euo pipefail

BIN=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${INTEROP_SCALE_PORT:-28185}
CTLD_PORT=${INTEROP_SLURMCTLD_PORT:-26817}
SLURMD_PORT=${INTEROP_SLURMD_PORT:-26818}
CHECK="python3 $ROOT/interop/scale_check.py"
S=${2:-$(mktemp -d /tmp/fetchpool-scale.XXXXXX)}
mkdir -p "$S"
chmod 755 "$S"
SCALE_PIDS=()
scale_cleanup() {
  # Jobs of this cluster first (SLURM_CONF names it), so no task outlives its daemons.
  if [ -n "${SLURM_CONF:-}" ] && squeue -h -o %A 2>/dev/null | grep -q .; then
    squeue -h -o %A | xargs -r scancel 2>/dev/null || true
    wait_for "the cancelled jobs' end" 15 bash -c "! squeue -h 2>/dev/null | grep -q ." || true
  fi
  for pid in "${SCALE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SCALE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap scale_cleanup EXIT
status=0
fail() { echo "   FAIL $*"; status=1; }

for tool in nginx parallel python3; do
  command -v "$tool" >/dev/null || { echo "scale: $tool is missing (apt-get install nginx parallel python3)"; exit 1; }
done
for port in "$PORT" "$CTLD_PORT" "$SLURMD_PORT"; do
  if ss -ltn "sport = :$port" | grep -q LISTEN; then
    echo "scale: port $port is taken; set INTEROP_SCALE_PORT / INTEROP_SLURMCTLD_PORT / INTEROP_SLURMD_PORT"; exit 1
  fi
done
# Waits (at most $2 s) until the command $3... succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || { echo "scale: $what not reached after $secs s"; return 1; }
    sleep 0.1
  done
}

echo "== scale: nginx on $PORT (/f/ as fast as it goes, /slow/ at 2 MiB/s a connection)"
mkdir -p "$S/www" "$S/tmp"
cat > "$S/nginx.conf" <<CONF
worker_processes 1;
pid $S/nginx.pid;
error_log $S/nginx-error.log;
events { worker_connections 512; }
http {
  log_format scale escape=none '\$request_method\t\$uri\t\$status\t\$http_range\t\$body_bytes_sent';
  access_log $S/nginx-access.log scale;
  client_body_temp_path $S/tmp/body;
  proxy_temp_path $S/tmp/proxy;
  fastcgi_temp_path $S/tmp/fastcgi;
  uwsgi_temp_path $S/tmp/uwsgi;
  scgi_temp_path $S/tmp/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$PORT;
    root $S/www;
    location /slow/ { limit_rate 2m; }
  }
}
CONF
URL="http://127.0.0.1:$PORT"
$CHECK corpus "$S/www" "$URL" 200 "$S/manifest.tsv"
chmod -R a+rX "$S/www"
nginx -c "$S/nginx.conf" -g 'daemon off;' &
SCALE_PIDS+=($!)
wait_for "nginx on $PORT" 20 bash -c "ss -ltn 'sport = :$PORT' | grep -q LISTEN"

echo "== scale: GNU parallel $(parallel --version | head -1 | awk '{print $3}'), the README's one-machine recipe"
recipe=$($CHECK recipe "$ROOT/README.md" "parallel --jobs 3")
echo "   $recipe"
mkdir -p "$S/parallel"
cp "$S/manifest.tsv" "$S/parallel/"
start=$SECONDS
( cd "$S/parallel" && PATH="$(dirname "$BIN"):$PATH" bash -c "$recipe" ) || fail "GNU parallel: the recipe exited $?"
echo "   parallel: 3 shards in $((SECONDS - start)) s"
$CHECK cover "GNU parallel" "$S/manifest.tsv" "$S/parallel/mirror" "$S"/parallel/report-{1,2,3}.jsonl || status=1
"$BIN" verify -i "$S/manifest.tsv" -o "$S/parallel/mirror" 2>&1 | sed 's/^/   verify: /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "GNU parallel: fetchpool verify"

slurm_ran=0
slurm_problem=""
start_slurm() {
  for tool in slurmctld slurmd sbatch squeue scancel scontrol munged; do
    command -v "$tool" >/dev/null || { slurm_problem="$tool is missing (apt-get install slurm-wlm munge)"; return 1; }
  done
  # munge: its own key, socket, pid and log; munged runs as its user and checks that its
  # directories are not writable by others.
  mkdir -p "$S/munge"
  head -c 1024 /dev/urandom > "$S/munge/munge.key"
  chown -R munge:munge "$S/munge"; chmod 700 "$S/munge"; chmod 400 "$S/munge/munge.key"
  chmod 755 "$S/munge"
  runuser -u munge -- munged --key-file="$S/munge/munge.key" --socket="$S/munge/munge.socket" \
    --pid-file="$S/munge/munged.pid" --log-file="$S/munge/munged.log" --seed-file="$S/munge/seed" \
    || { slurm_problem="munged did not start: $(tail -3 "$S/munge/munged.log" 2>/dev/null)"; return 1; }
  wait_for "munged's pid file" 10 test -s "$S/munge/munged.pid" || { slurm_problem="munged wrote no pid"; return 1; }
  SCALE_PIDS+=("$(cat "$S/munge/munged.pid")")
  munge -S "$S/munge/munge.socket" -n | unmunge -S "$S/munge/munge.socket" >/dev/null \
    || { slurm_problem="munge cannot encode and decode a credential"; return 1; }

  local host cpus
  host=$(hostname -s)
  cpus=$(nproc)
  mkdir -p "$S/slurm/ctld" "$S/slurm/d" "$S/slurm/run"
  cat > "$S/slurm/slurm.conf" <<CONF
# make interop's one-node cluster: no systemd, no cgroups, no accounting.
ClusterName=fetchpool-interop
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$S/munge/munge.socket
CredType=cred/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$S/slurm/ctld
SlurmdSpoolDir=$S/slurm/d
SlurmctldPidFile=$S/slurm/slurmctld.pid
SlurmdPidFile=$S/slurm/slurmd.pid
SlurmctldLogFile=$S/slurm/slurmctld.log
SlurmdLogFile=$S/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
# SIGTERM at scancel, SIGKILL 5 s later; finished jobs stay visible to scontrol.
KillWait=5
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=interop Nodes=$host Default=YES MaxTime=30 State=UP
CONF
  export SLURM_CONF="$S/slurm/slurm.conf"
  slurmctld -D -i -f "$SLURM_CONF" > "$S/slurm/slurmctld.out" 2>&1 &
  SCALE_PIDS+=($!)
  slurmd -D -f "$SLURM_CONF" > "$S/slurm/slurmd.out" 2>&1 &
  SCALE_PIDS+=($!)
  if ! wait_for "an idle Slurm node" 30 bash -c "sinfo -h -o %t | grep -qx idle"; then
    slurm_problem="no idle node after 30 s: $(sinfo -h 2>&1 | head -1); slurmctld: $(tail -2 "$S/slurm/slurmctld.log" "$S/slurm/slurmctld.out" 2>/dev/null | tr '\n' ' '); slurmd: $(tail -2 "$S/slurm/slurmd.log" "$S/slurm/slurmd.out" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
}

# Waits until no task of job $1 is queued or running (at most $2 s).
wait_job() {
  wait_for "the end of Slurm job $1" "$2" bash -c "! squeue -h -j $1 2>/dev/null | grep -q ."
}

# The state and exit code of each task of job $1, one "TASK STATE EXIT" line each.
task_states() {
  scontrol show job -o "$1" | sed -n 's/.*ArrayTaskId=\([0-9]*\).*JobState=\([A-Z_]*\).*ExitCode=\([0-9:]*\).*/\1 \2 \3/p' | sort -n
}

echo "== scale: Slurm $(slurmctld -V 2>/dev/null | awk '{print $2}'), one node on this machine"
if start_slurm; then
  slurm_ran=1
  echo "   slurmctld and slurmd up ($(sinfo -h -o '%P %D node(s), %c CPUs, %t'))"
  script="$S/slurm/fetch.sbatch"
  # The README's script, with its output directory moved into this run's temp dir.
  $CHECK recipe "$ROOT/README.md" "SLURM_ARRAY_TASK_ID" | sed "s|/scratch/mirror|$S/slurm/mirror|" > "$script"
  sed 's/^/   /' "$script"
  run="$S/slurm/run"
  cp "$S/manifest.tsv" "$run/"
  export PATH="$(dirname "$BIN"):$PATH"
  start=$SECONDS
  jid=$(sbatch --parsable --array=1-4 --chdir="$run" --output="$run/task-%a.out" "$script")
  wait_job "$jid" 120 || fail "Slurm: array $jid did not end in 120 s"
  echo "   array $jid of 4 tasks ended in $((SECONDS - start)) s: $(task_states "$jid" | tr '\n' ',' )"
  [ "$(task_states "$jid" | awk '$2 == "COMPLETED" && $3 == "0:0"' | wc -l)" -eq 4 ] || fail "Slurm: not every task COMPLETED with exit 0"
  $CHECK cover "Slurm array" "$S/manifest.tsv" "$S/slurm/mirror" "$run"/report-{1,2,3,4}.jsonl || status=1
  "$BIN" verify -i "$S/manifest.tsv" -o "$S/slurm/mirror" 2>&1 | sed 's/^/   verify: /'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "Slurm: fetchpool verify"
  "$BIN" -q -i "$S/manifest.tsv" -o "$S/slurm/whole" --json > "$S/slurm/whole.json" || fail "Slurm: the unsharded run"
  "$BIN" report --json -i "$S/manifest.tsv" "$run/report-*.jsonl" > "$S/slurm/combined.json" 2> "$S/slurm/combined.txt" \
    || fail "Slurm: fetchpool report exited $?"
  sed 's/^/   report: /' "$S/slurm/combined.txt"
  $CHECK same-counts "Slurm array" "$S/slurm/whole.json" "$S/slurm/combined.json" || status=1

  echo "== scale: Slurm, task 2 cancelled mid-transfer (scancel: SIGTERM), then requeued"
  cancel="$S/slurm/cancel"
  mkdir -p "$cancel"
  cp "$S/manifest.tsv" "$cancel/"
  big=$($CHECK slow "$S/www" "$URL" "$cancel/manifest.tsv" 1 4)
  chmod -R a+rX "$S/www"
  sed "s|$S/slurm/mirror|$S/slurm/mirror-cancel|" "$script" > "$cancel/fetch.sbatch"
  out="$S/slurm/mirror-cancel"
  jid=$(sbatch --parsable --array=1-4 --chdir="$cancel" --output="$cancel/task-%a.out" "$cancel/fetch.sbatch")
  # Task 2 has begun the large file: more than 256 KiB of it in its .part.
  if wait_for "task 2's first 256 KiB of $big" 60 bash -c "[ \$(stat -c %s '$out/$big.part' 2>/dev/null || echo 0) -gt 262144 ]"; then
    if [ "${INTEROP_BREAK:-}" = sigkill ]; then
      # Slurm turns `scancel -s KILL` into its usual SIGTERM first; kill the task's
      # processes (scontrol listpids) directly instead.
      scontrol listpids "$(squeue -h -j "${jid}_2" -o %A)" | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}' | xargs -r kill -KILL
    else
      scancel "${jid}_2"
    fi
    stopped_at=$(date +%s%N)
    wait_for "task 2's end" 30 bash -c "! squeue -h -j ${jid}_2 2>/dev/null | grep -q ."  || fail "Slurm: task 2 still running 30 s after scancel"
    took=$(( ($(date +%s%N) - stopped_at) / 1000000 ))
    kept=$(stat -c %s "$out/$big.part" 2>/dev/null || echo 0)
    echo "   task 2 after scancel: $(task_states "$jid" | awk '$1 == 2') within $took ms, $kept bytes of $big kept"
    grep -h 'fetchpool' "$cancel/task-2.out" | sed 's/^/   task 2 said: /' || true
    cp "$cancel/report-2.jsonl" "$cancel/report-2-cancelled.jsonl"
    $CHECK cancelled "$cancel/manifest.tsv" "$out" "$cancel/report-2-cancelled.jsonl" "$big" || status=1
    wait_job "$jid" 120 || fail "Slurm: tasks 1, 3, 4 did not end"
    if [ "${INTEROP_BREAK:-}" != skip-requeue ]; then
      scontrol requeue "${jid}_2"
      # Slurm gives a requeued job a begin time some time ahead (squeue: BeginTime);
      # the run should not wait for it.
      scontrol update JobId="${jid}_2" StartTime=now
    fi
    start=$SECONDS
    wait_job "$jid" "${INTEROP_REQUEUE_WAIT:-120}" || fail "Slurm: the requeued task did not end ($(squeue -h -j "$jid" -o '%i %T %r' | tr '\n' ' '))"
    echo "   task 2 requeued, ended in $((SECONDS - start)) s: $(task_states "$jid" | awk '$1 == 2')"
    $CHECK resumed "$cancel/manifest.tsv" "$out" "$cancel/report-2.jsonl" "$big" "$kept" "$S/nginx-access.log" || status=1
    $CHECK cover-again "Slurm array after requeue" "$cancel/manifest.tsv" "$out" "$cancel"/report-{1,2,3,4}.jsonl || status=1
  else
    fail "Slurm: task 2 never began $big ($(task_states "$jid" | tr '\n' ','))"
    scancel "$jid" || true
  fi
else
  echo "   SLURM NOT RUN: $slurm_problem"
  echo "   (the sharded checks ran under GNU parallel only)"
  if [ "${INTEROP_SLURM:-}" = require ]; then status=1; fi
fi

if [ "$status" -ne 0 ]; then
  echo "scale: FAILED (work dir $S)"
  exit 1
fi
if [ "$slurm_ran" = 1 ]; then
  echo "scale: GNU parallel and a Slurm array of 4 (with scancel and requeue) passed"
else
  echo "scale: GNU parallel passed; SLURM NOT RUN ($slurm_problem)"
fi
