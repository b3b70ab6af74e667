#!/usr/bin/env bash
# Run a command, or an array of jobs, on a Slurm cluster with a log per job (Kaldi's slurm.pl).
# Same interface and log format as utils/run.sh:
#
#   utils/slurm.sh [options] JOB=1:N <logfile> <command> [args...]
#   utils/slurm.sh [options] <logfile> <command> [args...]
#
# Every whole-word occurrence of the range's name (JOB, SPLIT, ...) in the logfile and the
# command becomes the job number. Arguments without whitespace are used as they are (pass
# a pipe as \|), arguments with whitespace are quoted.
#
# Options (mapped to sbatch flags; when one is given twice, the later one wins, so a
# recipe can add e.g. --gpu 4 to a command from cmd.sh that already has --gpu 1):
#   --mem SIZE          memory per job (per node), e.g. 4G -> --mem=SIZE
#   --gpu N             GPUs per job (per node; 0: none)  -> --gres=gpu:N
#   --num-nodes N       nodes per job (default 1)         -> --nodes=N --ntasks-per-node=1
#   --num-threads N     CPU cores per job (per node)      -> --cpus-per-task=N
#   --time T            time limit, e.g. 4:00:00          -> --time=T
#   --partition P       partition                         -> --partition=P
#   --max-jobs-run N    at most N jobs of the array running at once -> --array=1-M%N
# A bad value (e.g. --gpu x, --mem 4GB, --time 4h) or job range is a one-line error before
# anything is submitted.
# Account, QOS etc. can be set with Slurm's own environment variables (SBATCH_ACCOUNT, ...).
#
# JOB=a:b is submitted as one Slurm job array, "sbatch --wait --array=a-b" (job numbers must
# be below the cluster's MaxArraySize, 1001 by default); without a range it is one plain job.
# The batch script is written to <logdir>/q/<name>.sh; each task picks its job number from
# SLURM_ARRAY_TASK_ID and writes its own <logfile>; Slurm's own messages go to
# <logdir>/q/<name>.out (<name> with the job number). Jobs run in the current folder with
# the current environment (--export=ALL), so the recipe's path.sh settings carry over.
#
# With --num-nodes N > 1 the command runs once on every node, through
# "srun --ntasks-per-node=1 --kill-on-bad-exit=1", all nodes' output going to the one log.
# The command finds its place from Slurm's variables: SLURM_NODEID (0..N-1, the node rank),
# SLURM_NNODES and SLURM_JOB_NODELIST (its first host is a natural rendezvous host), e.g.
#   torchrun --nnodes=\$SLURM_NNODES --node_rank=\$SLURM_NODEID --nproc_per_node=4 ...
# (escape the $ so that it is expanded on the node, not by the recipe).
#
# Exit status: 0 when every job succeeded (its log ends with "# Ended (code 0)"), else 1,
# naming the log of the first failed job.
set -uo pipefail  # no -e: a failing job is counted and reported, not fatal here

usage() {
    { echo "Usage: $0 [options] [JOB=1:N] <logfile> <command> [args...]"; echo
      sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; } >&2
    exit 1
}
die() { echo "slurm.sh: $*" >&2; exit 1; }

max_jobs=0 threads="" mem="" gpus=0 nodes=1 time_limit="" partition=""
. "$(dirname "${BASH_SOURCE[0]}")/job_common.sh"
# Options and the job range may come in any order before the log file (as in Kaldi).
while [ $# -gt 0 ]; do
    case "$1" in
        --max-jobs-run|--max_jobs_run|--mem|--gpu|--num-nodes|--num_nodes|--num-threads|--num_threads|--time|--partition)
            opt_need_value "$@"; check_job_option "$1" "$2"
            case "$1" in
                --max-jobs-run|--max_jobs_run) max_jobs=$2 ;;
                --mem) mem=$2 ;;
                --gpu) gpus=$2 ;;
                --num-nodes|--num_nodes) nodes=$2 ;;
                --num-threads|--num_threads) threads=$2 ;;
                --time) time_limit=$2 ;;
                --partition) partition=$2 ;;
            esac
            shift 2 ;;
        -h|--help) usage ;;
        --*) die "unknown option $1" ;;
        *) parse_job_range "$1" || break; shift ;;
    esac
done
[ $# -ge 2 ] || usage
logfile=$1
shift
command -v sbatch >/dev/null || die "sbatch not found on PATH (is this a Slurm cluster? Use utils/run.sh locally)"

sbatch_opts=()
[ "$nodes" -eq 1 ] || sbatch_opts+=("--nodes=$nodes" --ntasks-per-node=1)
[ "$gpus" -eq 0 ] || sbatch_opts+=("--gres=gpu:$gpus")
[ -z "$threads" ] || sbatch_opts+=("--cpus-per-task=$threads")
[ -z "$mem" ] || sbatch_opts+=("--mem=$mem")
[ -z "$time_limit" ] || sbatch_opts+=("--time=$time_limit")
[ -z "$partition" ] || sbatch_opts+=("--partition=$partition")

cmd=$(command_string "$@")

num_jobs=$(( last - first + 1 ))
job_logs "$logfile"
rm -f "${logs[@]}"  # a stale log's end line would pass for this run's
cmds=()
for (( id = first; id <= last; id++ )); do cmds+=("$(subst "$cmd")"); done

# Names under <logdir>/q: the script keeps the range's name (one script for all tasks),
# Slurm's output files get the task number through sbatch's %a.
qdir=$(dirname "${logs[0]}")/q
mkdir -p "$qdir" || die "cannot create $qdir"
name=$(basename "$logfile" .log)
script=$qdir/$name.sh submit=$qdir/$name.submit out=$qdir/$name.out
array_opts=()
if [ -n "$var" ]; then
    out=$(id=$'\001'; subst "$name")  # a placeholder that no range name can match
    [ "$out" != "$name" ] || out=$name.$'\001'
    out=${out//$'\001'/%a}
    out=$qdir/$out.out
    array_opts=("--array=$first-$last")
    [ "$max_jobs" -eq 0 ] || array_opts[0]+="%$max_jobs"
fi

# The batch script: job number -> log and command are tabulated here, so each task only
# looks itself up. Log header and footer as in utils/run.sh.
{
    echo "#!/usr/bin/env bash"
    echo "# Written by utils/slurm.sh for $logfile"
    printf 'cd %q || exit 1\n' "$PWD"
    printf 'logs=('; for (( i = 0; i < num_jobs; i++ )); do printf ' [%d]=%q' $(( first + i )) "${logs[i]}"; done; echo ' )'
    printf 'cmds=('; for (( i = 0; i < num_jobs; i++ )); do printf ' [%d]=%q' $(( first + i )) "${cmds[i]}"; done; echo ' )'
    echo "id=\${SLURM_ARRAY_TASK_ID:-$first}"
    echo 'log=${logs[$id]} cmd=${cmds[$id]} job=${SLURM_JOB_ID:-?}'
    echo '[ -z "${SLURM_ARRAY_TASK_ID:-}" ] || job=${SLURM_ARRAY_JOB_ID:-?}_$SLURM_ARRAY_TASK_ID'
    echo '{ echo "# $cmd"; echo "# Started at $(date)"'
    echo '  echo "# Running on $(hostname) as Slurm job $job${SLURM_JOB_NODELIST:+ (nodes $SLURM_JOB_NODELIST)}"; } > "$log" || exit 1'
    echo 'start=$(date +%s)'
    if [ "$nodes" -gt 1 ]; then
        # srun does not inherit sbatch's --cpus-per-task (Slurm >= 22.05) unless told so.
        echo '[ -z "${SLURM_CPUS_PER_TASK:-}" ] || export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK'
        echo 'srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c "$cmd" >> "$log" 2>&1'
    else
        echo 'bash -c "$cmd" >> "$log" 2>&1'
    fi
    echo 'rc=$?'
    echo "echo \"# Accounting: time=\$(( \$(date +%s) - start )) threads=${threads:-1}\" >> \"\$log\""
    echo 'echo "# Ended (code $rc) at $(date)" >> "$log"'
    echo 'exit $rc'
} > "$script.tmp" && mv "$script.tmp" "$script" || die "cannot write $script"

# On interrupt, cancel the job (sbatch --parsable writes its id first) and stop sbatch.
sbatch_pid=""
stop_jobs() {
    trap - INT TERM
    local jobid
    jobid=$(head -n 1 "$submit" 2>/dev/null | cut -d';' -f1)
    [[ $jobid =~ ^[0-9]+$ ]] && scancel "$jobid" 2>/dev/null
    [ -z "$sbatch_pid" ] || kill -TERM -- "-$sbatch_pid" 2>/dev/null
    echo "slurm.sh: interrupted, jobs cancelled" >&2
    exec 2>/dev/null  # silence bash's "Terminated" notice
    exit 130
}
trap stop_jobs INT TERM

# sbatch in the background (own process group: set -m), so that a signal reaches stop_jobs
# at once rather than after sbatch --wait returns.
set -m
sbatch --wait --parsable --export=ALL --job-name="$name" --output="$out" \
    ${array_opts[@]+"${array_opts[@]}"} ${sbatch_opts[@]+"${sbatch_opts[@]}"} "$script" \
    > "$submit" 2>&1 < /dev/null &
sbatch_pid=$!
wait "$sbatch_pid"
sbatch_rc=$?
set +m

# Each job's status is the one its log ends with; no end line: it never ran to its end.
failed=0 failed_log=""
for (( i = 0; i < num_jobs; i++ )); do
    log=${logs[i]}
    rc=$(sed -n 's/^# Ended (code \([0-9]*\)) at .*/\1/p' "$log" 2>/dev/null | tail -n 1)
    if [ -z "$rc" ]; then
        rc=missing
        { echo "# slurm.sh: the job did not run to its end (rejected, cancelled, out of time or memory?);"
          echo "# sbatch exited with status $sbatch_rc and said:"
          sed 's/^/#   /' "$submit"
          echo "# Slurm's output for the job: ${out//%a/$(( first + i ))}"; } >> "$log"
    fi
    if [ "$rc" != 0 ]; then
        failed=$(( failed + 1 ))
        [ -n "$failed_log" ] || failed_log=$log
    fi
done
if [ "$failed" -gt 0 ]; then
    echo "slurm.sh: $failed / $num_jobs failed, log is in $failed_log" >&2
    exit 1
fi
exit 0
