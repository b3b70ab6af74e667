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
# Options (mapped to sbatch flags):
#   --mem SIZE          memory per job, e.g. 4G           -> --mem=SIZE
#   --gpu N             GPUs per job (0: none)            -> --gres=gpu:N
#   --num-threads N     CPU cores per job                 -> --cpus-per-task=N
#   --time T            time limit, e.g. 4:00:00          -> --time=T
#   --partition P       partition                         -> --partition=P
#   --max-jobs-run N    at most N jobs submitted at once (default: all)
# Account, QOS etc. can be set with Slurm's own environment variables (SBATCH_ACCOUNT, ...).
#
# Each job's batch script is written to <logdir>/q/<name>.sh and submitted with
# "sbatch --wait"; Slurm's own messages for the job go to <logdir>/q/<name>.out, the
# job's output to <logfile>. The job runs in the current folder with the current
# environment (--export=ALL), so the recipe's path.sh settings carry over.
# Exit status: 0 when every job succeeded, else 1 (naming the log of a failed job).
set -uo pipefail  # no -e: a failing job is counted and reported, not fatal here

usage() {
    { echo "Usage: $0 [options] [JOB=1:N] <logfile> <command> [args...]"; echo
      sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; } >&2
    exit 1
}
die() { echo "slurm.sh: $*" >&2; exit 1; }

max_jobs=0 threads=1
sbatch_opts=()
var="" first=1 last=1
# Options and the job range may come in any order before the log file (as in Kaldi).
while [ $# -gt 0 ]; do
    case "$1" in
        --max-jobs-run|--max_jobs_run)
            [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || die "$1 needs a number"
            max_jobs=$2; shift 2 ;;
        --mem)
            [ $# -ge 2 ] || die "$1 needs a value"
            sbatch_opts+=("--mem=$2"); shift 2 ;;
        --gpu)
            [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || die "$1 needs a number"
            [ "$2" -eq 0 ] || sbatch_opts+=("--gres=gpu:$2")
            shift 2 ;;
        --num-threads|--num_threads)
            [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -gt 0 ] || die "$1 needs a positive number"
            threads=$2; sbatch_opts+=("--cpus-per-task=$2"); shift 2 ;;
        --time)
            [ $# -ge 2 ] || die "$1 needs a value"
            sbatch_opts+=("--time=$2"); shift 2 ;;
        --partition)
            [ $# -ge 2 ] || die "$1 needs a value"
            sbatch_opts+=("--partition=$2"); shift 2 ;;
        -h|--help) usage ;;
        --*) die "unknown option $1" ;;
        *)
            [[ $1 =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+)(:([0-9]+))?$ ]] || break
            [ -z "$var" ] || die "more than one job range ($var=... and $1)"
            var=${BASH_REMATCH[1]}
            first=${BASH_REMATCH[2]}
            last=${BASH_REMATCH[4]:-$first}
            [ "$first" -le "$last" ] || die "empty job range $1"
            shift ;;
    esac
done
[ $# -ge 2 ] || usage
logfile=$1
shift
command -v sbatch >/dev/null || die "sbatch not found on PATH (is this a Slurm cluster? Use utils/run.sh locally)"

# Build the command string: whitespace-free arguments as they are, others quoted.
cmd=""
for arg in "$@"; do
    if [[ $arg =~ [[:space:]] || -z $arg ]]; then
        cmd+="$(printf '%q' "$arg") "
    else
        cmd+="$arg "
    fi
done
cmd=${cmd% }

# subst STRING: STRING with every whole-word $var replaced by $id (word characters: [A-Za-z0-9_]).
subst() {
    local s=$1
    [ -n "$var" ] || { printf '%s' "$s"; return; }
    local re="^(.*[^A-Za-z0-9_]|)${var}([^A-Za-z0-9_].*|)\$"
    while [[ $s =~ $re ]]; do
        s="${BASH_REMATCH[1]}${id}${BASH_REMATCH[2]}"
    done
    printf '%s' "$s"
}

# write_script ID LOG CMD SCRIPT: the batch script of one job (written whole, then renamed).
write_script() {
    local id=$1 log=$2 job_cmd=$3 script=$4
    {
        echo "#!/usr/bin/env bash"
        echo "# Written by utils/slurm.sh: job $id of $logfile"
        printf 'cd %q || exit 1\n' "$PWD"
        printf 'log=%q\n' "$log"
        printf '{ printf "%%s\\n" %q; echo "# Started at $(date)"; ' "# $job_cmd"
        echo 'echo "# Running on $(hostname) as Slurm job ${SLURM_JOB_ID:-?}"; } > "$log" || exit 1'
        echo 'start=$(date +%s)'
        printf 'bash -c %q >> "$log" 2>&1\n' "$job_cmd"
        echo 'rc=$?'
        echo "echo \"# Accounting: time=\$(( \$(date +%s) - start )) threads=$threads\" >> \"\$log\""
        echo 'echo "# Ended (code $rc) at $(date)" >> "$log"'
        echo 'exit $rc'
    } > "$script.tmp" && mv "$script.tmp" "$script"
}

status_dir=$(mktemp -d "${TMPDIR:-/tmp}/slurm.sh.XXXXXX") || die "cannot create a temporary folder"
pids=() submits=()
cleanup() { rm -rf "$status_dir"; }
# On interrupt, cancel the submitted jobs (sbatch --parsable wrote their ids first).
stop_jobs() {
    trap - INT TERM
    local f jobid
    for f in ${submits[@]+"${submits[@]}"}; do
        jobid=$(head -n 1 "$f" 2>/dev/null | cut -d';' -f1)
        [[ $jobid =~ ^[0-9_]+$ ]] && scancel "$jobid" 2>/dev/null
    done
    for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM -- "-$pid" 2>/dev/null; done
    echo "slurm.sh: interrupted, jobs cancelled" >&2
    exec 2>/dev/null  # silence bash's "Terminated" notices
    cleanup
    exit 130
}
trap cleanup EXIT
trap stop_jobs INT TERM

# submit_job ID LOG SCRIPT SUBMIT_LOG: submit one job and wait for it; record its status.
submit_job() {
    local id=$1 log=$2 script=$3 submit_log=$4 name rc
    name=$(basename "$script" .sh)
    sbatch --wait --parsable --export=ALL --job-name="$name" --output="${script%.sh}.out" \
        ${sbatch_opts[@]+"${sbatch_opts[@]}"} "$script" > "$submit_log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ] && ! grep -q '^# Ended (code' "$log" 2>/dev/null; then
        # The job never ran to its end (rejected, cancelled, out of time or memory): say so in its log.
        { echo "# slurm.sh: sbatch exited with status $rc before the job ended; sbatch said:"
          sed 's/^/#   /' "$submit_log"
          echo "# Slurm's output for the job: ${script%.sh}.out"; } >> "$log"
    fi
    echo "$rc" > "$status_dir/$id"
    exit "$rc"
}

num_jobs=$(( last - first + 1 ))
[ "$max_jobs" -gt 0 ] || max_jobs=$num_jobs
id=$first
if [ "$num_jobs" -gt 1 ] && [ "$(subst "$logfile")" = "$logfile" ]; then
    die "$num_jobs jobs would all write one log file $logfile: put $var in its name"
fi
logs=() scripts=()
for (( id = first; id <= last; id++ )); do
    log=$(subst "$logfile")
    qdir=$(dirname "$log")/q
    mkdir -p "$qdir" || die "cannot create $qdir"
    script=$qdir/$(basename "$log" .log).sh
    write_script "$id" "$log" "$(subst "$cmd")" "$script" || die "cannot write $script"
    logs+=("$log"); scripts+=("$script"); submits+=("${script%.sh}.submit")
done

set -m  # each sbatch in its own process group, so stop_jobs can stop it
running=0 done_jobs=0
for (( id = first; id <= last; id++ )); do
    i=$(( id - first ))
    if [ "$running" -ge "$max_jobs" ]; then
        wait -n; running=$(( running - 1 )); done_jobs=$(( done_jobs + 1 ))
        [ "$num_jobs" -eq 1 ] || echo "slurm.sh: $done_jobs/$num_jobs jobs done" >&2
    fi
    submit_job "$id" "${logs[$i]}" "${scripts[$i]}" "${submits[$i]}" < /dev/null &
    pids+=("$!")
    running=$(( running + 1 ))
done
while [ "$running" -gt 0 ]; do
    wait -n; running=$(( running - 1 )); done_jobs=$(( done_jobs + 1 ))
    [ "$num_jobs" -eq 1 ] || echo "slurm.sh: $done_jobs/$num_jobs jobs done" >&2
done
set +m

failed=0 failed_log=""
for (( id = first; id <= last; id++ )); do
    rc=$(cat "$status_dir/$id" 2>/dev/null || echo missing)
    if [ "$rc" != 0 ]; then
        failed=$(( failed + 1 ))
        [ -n "$failed_log" ] || failed_log=${logs[$(( id - first ))]}
    fi
done
if [ "$failed" -gt 0 ]; then
    echo "slurm.sh: $failed / $num_jobs failed, log is in $failed_log" >&2
    exit 1
fi
exit 0
