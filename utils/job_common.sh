# What utils/run.sh and utils/slurm.sh share: the checks of their options and job range, the
# command string, the substitution of the job number and the per-job log names. Sourced, not
# run; uses the sourcing script's die().
. "$(dirname "${BASH_SOURCE[0]}")/check_options.sh"

var="" first=1 last=1

# check_job_option OPTION VALUE: check the value of an option that utils/slurm.sh maps to an
# sbatch flag and utils/run.sh accepts and ignores, so that both reject the same mistakes.
check_job_option() {
    case "$1" in
        --max-jobs-run|--max_jobs_run|--num-nodes|--num_nodes|--num-threads|--num_threads)
            check_opt posint "$1" "$2" ;;
        --gpu) check_opt uint "$1" "$2" ;;
        --mem) check_opt slurm_mem "$1" "$2" ;;
        --time) check_opt slurm_time "$1" "$2" ;;
        --partition) check_opt nonempty "$1" "$2" ;;
    esac
}

# parse_job_range ARG: if ARG is a job range (JOB=1:N, SPLIT=3, ...), set var, first and last
# and succeed; an argument NAME=... without "/" or "." that is no valid range is an error (as
# JOB=1-4 or JOB=1:x); otherwise (a log file) fail. A second range is an error.
parse_job_range() {
    [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= && $1 != */* && $1 != *.* ]] || return 1
    if ! [[ $1 =~ ^([A-Za-z_][A-Za-z0-9_]*)=(0|[1-9][0-9]{0,8})(:(0|[1-9][0-9]{0,8}))?$ ]] \
        || [ "${BASH_REMATCH[2]}" -gt "${BASH_REMATCH[4]:-${BASH_REMATCH[2]}}" ]; then
        opt_error "a job range must be NAME=FIRST:LAST (integers, FIRST <= LAST) or NAME=N, got '$1'"
    fi
    [ -z "$var" ] || die "more than one job range ($var=... and $1)"
    var=${BASH_REMATCH[1]}
    first=${BASH_REMATCH[2]}
    last=${BASH_REMATCH[4]:-$first}
}

# command_string ARGS...: the arguments joined by spaces, those without whitespace as they
# are (so an escaped \| or \> acts in the job's shell), the others quoted.
command_string() {
    local arg s=""
    for arg in "$@"; do
        if [[ $arg =~ [[:space:]] || -z $arg ]]; then
            s+="$(printf '%q' "$arg") "
        else
            s+="$arg "
        fi
    done
    printf '%s' "${s% }"
}

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

# job_logs LOGFILE: logs[i] = the log of job first + i, with its folder created. Several jobs
# writing one log is an error.
job_logs() {
    local id
    if [ $(( last - first )) -gt 0 ] && [ "$(id=$first; subst "$1")" = "$1" ]; then
        die "$(( last - first + 1 )) jobs would all write one log file $1: put $var in its name"
    fi
    logs=()
    for (( id = first; id <= last; id++ )); do
        logs+=("$(subst "$1")")
        mkdir -p "$(dirname "${logs[-1]}")" || die "cannot create the folder of ${logs[-1]}"
    done
}
