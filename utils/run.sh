#!/usr/bin/env bash
# Run a command, or an array of jobs, on this machine with a log per job (Kaldi's run.pl).
#
#   utils/run.sh [options] JOB=1:N <logfile> <command> [args...]
#   utils/run.sh [options] <logfile> <command> [args...]
#
# The name before "=" is free (JOB, SPLIT, ...); every whole-word occurrence of it in the
# logfile and the command is replaced by the job number, e.g.
#   utils/run.sh JOB=1:4 exp/log/fbank.JOB.log python -m bljust.bin.compute_fbank data/split4/JOB out.JOB
# The command runs with bash. Arguments without whitespace are used as they are, so a
# pipe or redirection can be passed escaped (\| \>); arguments containing whitespace are
# quoted, so they reach the program as one argument.
#
# Options:
#   --max-jobs-run N   run at most N jobs at once (N >= 1; default: all)
#   --mem, --gpu, --num-nodes, --num-threads, --time, --partition  VALUE: checked as
#                      utils/slurm.sh checks them, and ignored, so that recipes can switch
#                      between this and utils/slurm.sh (see cmd.sh)
# A bad option value or job range is a one-line error before anything runs.
#
# Each log starts with "# <command>" and "# Started at <date>" and ends with
# "# Accounting: time=<seconds> threads=1" and "# Ended (code <status>) at <date>".
# Exit status: 0 when every job succeeded, else 1.
set -uo pipefail  # no -e: a failing job is counted and reported, not fatal here

usage() {
    { echo "Usage: $0 [options] [JOB=1:N] <logfile> <command> [args...]"; echo
      sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; } >&2
    exit 1
}
die() { echo "run.sh: $*" >&2; exit 1; }

max_jobs=0
. "$(dirname "${BASH_SOURCE[0]}")/job_common.sh"
# Options and the job range may come in any order before the log file (as in Kaldi).
while [ $# -gt 0 ]; do
    case "$1" in
        --max-jobs-run|--max_jobs_run)
            opt_need_value "$@"; check_job_option "$1" "$2"
            max_jobs=$2; shift 2 ;;
        --mem|--gpu|--num-nodes|--num_nodes|--num-threads|--num_threads|--time|--partition|--config)
            opt_need_value "$@"; check_job_option "$1" "$2"  # checked as utils/slurm.sh does
            shift 2 ;;
        -h|--help) usage ;;
        --*) die "unknown option $1" ;;
        *) parse_job_range "$1" || break; shift ;;
    esac
done
[ $# -ge 2 ] || usage
logfile=$1
shift

cmd=$(command_string "$@")

status_dir=$(mktemp -d "${TMPDIR:-/tmp}/run.sh.XXXXXX") || die "cannot create a temporary folder"
pids=()
# On interrupt, stop the jobs too: each runs in its own process group (set -m below).
cleanup() { rm -rf "$status_dir"; }
stop_jobs() {
    trap - INT TERM
    for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM -- "-$pid" 2>/dev/null; done
    echo "run.sh: interrupted, jobs stopped" >&2
    exec 2>/dev/null  # silence bash's "Terminated" notices for the stopped jobs
    cleanup
    exit 130
}
trap cleanup EXIT
trap stop_jobs INT TERM

# run_job ID LOG CMD: run one job with its log header and footer; record its status.
run_job() {
    local id=$1 log=$2 job_cmd=$3 start rc
    {
        echo "# $job_cmd"
        echo "# Started at $(date)"
        echo "#"
    } > "$log" || exit 1
    start=$(date +%s)
    bash -c "$job_cmd" >> "$log" 2>&1
    rc=$?
    {
        echo "# Accounting: time=$(( $(date +%s) - start )) threads=1"
        echo "# Ended (code $rc) at $(date)"
    } >> "$log"
    echo "$rc" > "$status_dir/$id"
    exit "$rc"
}

num_jobs=$(( last - first + 1 ))
[ "$max_jobs" -gt 0 ] || max_jobs=$num_jobs
job_logs "$logfile"

if [ "$num_jobs" -eq 1 ]; then
    # One job runs in the foreground: it keeps our stdin and gets Ctrl-C directly.
    id=$first
    ( run_job "$id" "${logs[0]}" "$(subst "$cmd")" )
else
    # Each job in its own process group (set -m), so stop_jobs can stop whole pipelines;
    # stdin is /dev/null since parallel jobs cannot share it.
    set -m
    running=0 done_jobs=0
    for (( id = first; id <= last; id++ )); do
        if [ "$running" -ge "$max_jobs" ]; then
            wait -n; running=$(( running - 1 )); done_jobs=$(( done_jobs + 1 ))
            echo "run.sh: $done_jobs/$num_jobs jobs done" >&2
        fi
        run_job "$id" "${logs[$(( id - first ))]}" "$(subst "$cmd")" < /dev/null &
        pids+=("$!")
        running=$(( running + 1 ))
    done
    while [ "$running" -gt 0 ]; do
        wait -n; running=$(( running - 1 )); done_jobs=$(( done_jobs + 1 ))
        echo "run.sh: $done_jobs/$num_jobs jobs done" >&2
    done
    set +m
fi

failed=0 failed_log=""
for (( id = first; id <= last; id++ )); do
    rc=$(cat "$status_dir/$id" 2>/dev/null || echo missing)
    if [ "$rc" != 0 ]; then
        failed=$(( failed + 1 ))
        [ -n "$failed_log" ] || failed_log=${logs[$(( id - first ))]}
    fi
done
if [ "$failed" -gt 0 ]; then
    echo "run.sh: $failed / $num_jobs failed, log is in $failed_log" >&2
    exit 1
fi
exit 0
