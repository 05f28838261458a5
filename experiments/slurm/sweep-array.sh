#!/usr/bin/env bash
# One Slurm array task per cell of a caopd sweep (docs/sweep.md, "Clusters").
#
# The array's range is 0..N-1 for a sweep of N cells; the first line of --list is "N cells (...)":
#   N=$(build/caopd sweep experiments/ood-sweep.json --list | head -n 1 | cut -d' ' -f1)
#   sbatch --array=0-$((N - 1)) experiments/slurm/sweep-array.sh experiments/ood-sweep.json /shared/runs/ood-sweep
# The --array line below is the default for experiments/ood-sweep.json (18 cells); the command
# line's --array overrides it. When every task has ended (sbatch --dependency=afterany:JOBID):
#   build/caopd merge /shared/runs/ood-sweep            # -> /shared/runs/ood-sweep/summary.h5
#   build/caopd analyze /shared/runs/ood-sweep          # metrics against OOD severity
# A task that was cut short (time limit, preemption) resumes from its cell's last checkpoint
# when it runs again (sbatch --array=I ..., or --requeue); a finished cell is skipped.
#
#SBATCH --job-name=caopd-sweep
#SBATCH --array=0-17
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
#SBATCH --time=00:30:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

spec=${1:?usage: sbatch --array=0-<N-1> sweep-array.sh SPEC.json OUT_DIR}
out=${2:?usage: sbatch --array=0-<N-1> sweep-array.sh SPEC.json OUT_DIR}
caopd=${CAOPD:-build/caopd}

# libgomp threads sleep between parallel regions instead of spinning (README, "Bench").
export OMP_WAIT_POLICY=passive
# SLURM_ARRAY_TASK_ID selects the cell; the cell's libtorch threads are the CPUs Slurm gave
# this task (its affinity mask), unless --threads says otherwise: one here, the fastest use of
# cores for models this small (raise --cpus-per-task for larger ones).
exec "$caopd" sweep "$spec" --out "$out"
