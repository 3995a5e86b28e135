#!/usr/bin/env bash
# Our binaries under the other launchers users have: the environment a plain `srun` gives its
# tasks (no MASTER_ADDR: the communicator takes the first host of the step's node list),
# `torchrun --no-python` (its agent serves the rendezvous store) and Open MPI's mpirun through
# `launch --launcher mpirun`.  Each trains launch_probe on two CPU ranks and must end with the
# parameters one process trains.  torchrun needs a Python with torch (ZT_TORCHRUN names a torchrun,
# else python3 -m torch.distributed.run is tried); mpirun needs Open MPI; without them those cases
# say SKIPPED and why.
set -uo pipefail

# shellcheck source=tools/launcher/test_lib.sh
source "$(dirname "$0")/test_lib.sh"
export ZT_RENDEZVOUS_TIMEOUT_S=60

"$probe" --stage 2 --steps 4 --out "$tmp/one.txt" >"$tmp/log" 2>&1 || fail "the one-process run failed"

case_name="plain srun: SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID and the step's node list, no MASTER_ADDR"
job_id=$((RANDOM % 20000))
pids=()
for r in 0 1; do
  env -u MASTER_ADDR -u MASTER_PORT -u RANK -u WORLD_SIZE SLURM_PROCID=$r SLURM_NTASKS=2 SLURM_LOCALID=$r \
    SLURM_STEP_TASKS_PER_NODE=2 SLURM_STEP_NODELIST="localhost" SLURM_JOB_NODELIST="localhost" SLURM_JOB_ID=$job_id \
    timeout 120 "$probe" --stage 2 --steps 4 --out "$tmp/srun_$r.txt" >"$tmp/srun.$r" 2>&1 &
  pids+=($!)
done
for r in 0 1; do wait "${pids[$r]}" || { cp "$tmp/srun.$r" "$tmp/log"; fail "task $r failed"; }; done
grep -qF "probe: rank 1 of 2 local 1" "$tmp/srun.1" || { cp "$tmp/srun.1" "$tmp/log"; fail "task 1 is not rank 1 of 2"; }
close "$tmp/one.txt" "$tmp/srun_0.txt" || fail "parameters differ from one process"

case_name="torchrun --no-python"
torchrun=()
if [[ -n ${ZT_TORCHRUN:-} ]]; then
  torchrun=("$ZT_TORCHRUN")
elif python3 -c 'import torch.distributed.run' 2>/dev/null; then
  torchrun=(python3 -m torch.distributed.run)
fi
if ((${#torchrun[@]} == 0)); then
  echo "SKIPPED [$case_name]: no torchrun (set ZT_TORCHRUN, or have python3 import torch)"
else
  timeout 180 "${torchrun[@]}" --nnodes=1 --nproc_per_node=2 --master_addr=127.0.0.1 --master_port="$(free_port)" \
    --no-python "$probe" --stage 2 --steps 4 --out "$tmp/torchrun.txt" >"$tmp/log" 2>&1
  rc=$?
  [[ $rc == 0 ]] || fail "torchrun exited $rc"
  grep -qF "probe: rank 1 of 2 local 1" "$tmp/log" || fail "no rank 1 of 2"
  close "$tmp/one.txt" "$tmp/torchrun.txt" || fail "parameters differ from one process"
  echo "checked [$case_name] with ${torchrun[*]}"
fi

case_name="launch --launcher mpirun (Open MPI)"
if ! command -v mpirun >/dev/null; then
  echo "SKIPPED [$case_name]: no mpirun on PATH (Debian: openmpi-bin)"
else
  printf 'localhost slots=2\n' >"$tmp/hostfile"
  # As root Open MPI wants --allow-run-as-root; a test machine may have fewer cores than ranks;
  # and Open MPI refuses to start without a remote agent that exists, even for one host.
  mpi_args="--allow-run-as-root --oversubscribe"
  command -v ssh >/dev/null || mpi_args="$mpi_args --mca plm_rsh_agent /bin/false"
  timeout 180 "$launch" --hostfile "$tmp/hostfile" --cpu --force_multi --launcher mpirun --master_port "$(free_port)" \
    --launcher_args "$mpi_args" "$probe" --stage 2 --steps 4 --out "$tmp/mpi.txt" \
    >"$tmp/log" 2>&1
  rc=$?
  [[ $rc == 0 ]] || fail "exited $rc"
  grep -qF "probe: rank 1 of 2 local 1" "$tmp/log" || fail "no rank 1 of 2 from OMPI_COMM_WORLD_*"
  close "$tmp/one.txt" "$tmp/mpi.txt" || fail "parameters differ from one process"
fi

finish_tests "all compatibility checks passed"
