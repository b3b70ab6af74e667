# Checks of option values, for scripts to run before they do any work. Sourced (utils/parse_options.sh
# sources it, so every script that parses its options with it has these functions). A failed
# check prints one line on stderr and exits 1:
#
#   <script>: <option> must be <what is allowed>, got '<value>'
#
# (a boolean: "<option> takes true or false, got '<value>'"). <script> is the script's file
# name, local/<name> for a recipe's local/ scripts. The functions:
#
#   check_opt TYPE OPTION VALUE    e.g. check_opt posint --nj "$nj"
#   check_opts TYPE VAR...         check_opt TYPE --VAR "${!VAR}" for each VAR
#   opt_error MESSAGE              print "<script>: MESSAGE" and exit 1
#   opt_need_value "$@"            with $1 an option: fails unless a value follows it
#   opt_valid TYPE VALUE           whether VALUE is a TYPE (no list, no "?"), silently
#
# TYPE:
#   int[:MIN[:MAX]]  an integer, no leading zeros (uint = int:0, posint = int:1)
#   number, posnum   a decimal number (1, -2.5, 1e-3); posnum: above 0
#   bool             true or false
#   one_of:A|B|C     one of the words A, B, C
#   nonempty         anything but the empty string
#   slurm_mem        a Slurm memory size: megabytes, or a number with unit K, M, G or T (4G)
#   slurm_time       a Slurm time limit: minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S (or UNLIMITED)
#   list:TYPE        distinct values of TYPE separated by spaces or commas (may be empty)
#   TYPE?            TYPE, or empty
# shellcheck shell=bash

# The name errors are reported under.
__co_prog() {
    local dir=${0%/*}
    if [ "$dir" != "$0" ] && [ "${dir##*/}" = local ]; then printf 'local/%s' "${0##*/}"; else printf '%s' "${0##*/}"; fi
}

opt_error() { echo "$(__co_prog): $*" >&2; exit 1; }

opt_need_value() { [ $# -ge 2 ] || opt_error "option $1 needs a value"; }

# __co_int_range TYPE: sets min and max (empty: no bound) of an int type; uint and posint included.
__co_int_range() {
    local rest
    case "$1" in
        uint) min=0 max="" ;;
        posint) min=1 max="" ;;
        *) rest=${1#int}; rest=${rest#:}; min=${rest%%:*}; max=""
           [[ $rest != *:* ]] || max=${rest#*:} ;;
    esac
}

# __co_describe TYPE PLURAL: what TYPE allows, in words: "a positive integer", or with PLURAL=1
# "positive integers".
__co_describe() {
    local type=$1 plural=$2 min max words article=a
    case "$type" in
        int|int:*|uint|posint)
            __co_int_range "$type"
            if [ -n "$min" ] && [ -n "$max" ]; then words="integer@ from $min to $max" article=an
            elif [ "$min" = 0 ]; then words="non-negative integer@"
            elif [ "$min" = 1 ]; then words="positive integer@"
            elif [ -n "$min" ]; then words="integer@ >= $min" article=an
            else words="integer@" article=an; fi ;;
        number) words="number@" ;;
        posnum) words="positive number@" ;;
        bool) printf 'true or false'; return ;;
        one_of:*)
            words=${type#one_of:}
            words=${words//|/, }
            if [ "$plural" = 1 ]; then printf 'values among %s' "$words"; return; fi
            [[ $words != *", "* ]] || words="${words%, *} or ${words##*, }"
            printf '%s' "$words"; return ;;
        nonempty) printf 'non-empty'; return ;;
        slurm_mem) words="memory size@ such as 4000 (megabytes) or 4G (unit K, M, G or T)" ;;
        slurm_time) words="Slurm time limit@ such as 90 (minutes), 4:00:00 or 1-12:00:00" ;;
        *) printf '%s' "$type"; return ;;
    esac
    if [ "$plural" = 1 ]; then printf '%s' "${words/@/s}"; else printf '%s %s' "$article" "${words/@/}"; fi
}

# opt_valid TYPE VALUE: whether VALUE is a TYPE (a single value: no list, no "?").
opt_valid() {
    local type=$1 v=$2 min max
    case "$type" in
        int|int:*|uint|posint)
            # At most 18 digits: bash's 64-bit arithmetic must hold it.
            [[ $v =~ ^-?(0|[1-9][0-9]{0,17})$ ]] && [ "$v" != -0 ] || return 1
            __co_int_range "$type"
            { [ -z "$min" ] || [ "$v" -ge "$min" ]; } && { [ -z "$max" ] || [ "$v" -le "$max" ]; } ;;
        number) [[ $v =~ ^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$ ]] ;;
        posnum)
            # Positive: no minus sign and a non-zero digit before the exponent.
            [[ $v =~ ^\+?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$ ]] && [[ ${BASH_REMATCH[1]} =~ [1-9] ]] ;;
        bool) [ "$v" = true ] || [ "$v" = false ] ;;
        one_of:*) [[ $v != *"|"* ]] && [[ "|${type#one_of:}|" == *"|$v|"* ]] ;;
        nonempty) [ -n "$v" ] ;;
        slurm_mem) [[ $v =~ ^[0-9]+[KMGTkmgt]?$ ]] ;;
        slurm_time)
            [[ $v =~ ^([0-9]+(:[0-9]+){0,2}|[0-9]+-[0-9]+(:[0-9]+){0,2}|UNLIMITED|INFINITE|unlimited|infinite)$ ]] ;;
        *) echo "check_options.sh: unknown type '$type'" >&2; exit 2 ;;
    esac
}

check_opt() {
    local type=$1 opt=$2 v=$3 optional="" item seen=" "
    if [[ $type == *"?" ]]; then type=${type%"?"}; optional=1; fi
    [ -z "$optional" ] || [ -n "$v" ] || return 0
    if [[ $type == list:* ]]; then
        local items=()
        read -r -d '' -a items <<< "${v//,/ }" || true
        for item in ${items[@]+"${items[@]}"}; do
            if ! opt_valid "${type#list:}" "$item" || [[ $seen == *" $item "* ]]; then
                opt_error "$opt must be a list of distinct $(__co_describe "${type#list:}" 1), got '$v'"
            fi
            seen+="$item "
        done
        return 0
    fi
    opt_valid "$type" "$v" && return 0
    local verb="must be"
    [ "$type" != bool ] || verb="takes"
    opt_error "$opt $verb $(__co_describe "$type" 0)${optional:+ or empty}, got '$v'"
}

check_opts() {
    local __co_type=$1 __co_var
    shift
    for __co_var; do check_opt "$__co_type" "--$__co_var" "${!__co_var}"; done
}
