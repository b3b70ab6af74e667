#!/usr/bin/env bash
# Command-line options for recipe scripts, Kaldi style. Source it after setting defaults:
#
#   nj=4; use_gpu=false
#   help_message="Usage: $0 [--nj N] [--use-gpu true|false] <data>"
#   . utils/parse_options.sh
#   # "$@" now holds the positional arguments
#
# --foo-bar VALUE and --foo_bar VALUE (or --foo-bar=VALUE) set the variable foo_bar, which the
# script must have defined (a plain variable with a lower-case name); any other is an unknown
# option, an error. A variable whose current value is true or false accepts only true or false.
# --config FILE sources FILE (shell assignments) before the other options are applied, so the
# command line wins over the file (unless the script has a variable config of its own: then
# --config is an ordinary option). --help / -h prints $help_message and exits 0. Parsing stops
# at the first non-option or "--". Every error is one line on stderr, naming the option.
#
# It also sources utils/check_options.sh, whose check_opt / check_opts the script then uses to
# check the values of its numeric and enumerated options before it does any work:
#   check_opts posint nj; check_opt "one_of:char|bpe" --token_type "$token_type"

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "parse_options.sh: this file must be sourced (. utils/parse_options.sh), not run" >&2
    exit 1
fi

# Variables are prefixed so they do not clash with the calling script's own.
if [[ ${BASH_SOURCE[0]} == */* ]]; then . "${BASH_SOURCE[0]%/*}/check_options.sh"; else . check_options.sh; fi
__po_die() { opt_error "$@"; }

# Pass 1: config files, so that later command-line options override their values.
__po_cfg=1 __po_i=1
# A script's own (unexported) variable config makes --config an ordinary option.
if [[ $(declare -p config 2>/dev/null) == "declare -- "* ]]; then __po_cfg="" __po_i=$(( $# + 1 )); fi
while [ "$__po_i" -le $# ]; do
    __po_arg=${!__po_i}
    case "$__po_arg" in
        --) break ;;
        --config)
            __po_i=$((__po_i + 1))
            [ "$__po_i" -le $# ] || __po_die "option --config needs a file"
            __po_file=${!__po_i}
            [ -f "$__po_file" ] || __po_die "config file '$__po_file' not found"
            # shellcheck disable=SC1090
            . "$__po_file" ;;
        --config=*)
            __po_file=${__po_arg#--config=}
            [ -f "$__po_file" ] || __po_die "config file '$__po_file' not found"
            # shellcheck disable=SC1090
            . "$__po_file" ;;
        -h|--help) ;;
        --*=*) ;;
        --*) __po_i=$((__po_i + 1)) ;;  # skip the option's value
        *) break ;;
    esac
    __po_i=$((__po_i + 1))
done

# Pass 2: the options themselves.
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        -h|--help)
            if [ -n "${help_message:-}" ]; then
                printf '%s\n' "$help_message"
            else
                echo "No help found for $0 (it sets no \$help_message)"
            fi
            exit 0 ;;
        --config) if [ -n "$__po_cfg" ]; then shift 2; continue; fi ;;&
        --config=*) if [ -n "$__po_cfg" ]; then shift; continue; fi ;;&
        --*)
            if [[ $1 == --*=* ]]; then
                __po_name=${1%%=*}; __po_value=${1#*=}; __po_shift=1
            else
                [ $# -ge 2 ] || __po_die "option $1 needs a value"
                __po_name=$1; __po_value=$2; __po_shift=2
            fi
            __po_opt=$__po_name
            __po_name=${__po_name#--}
            __po_name=${__po_name//-/_}
            # Only the script's own settings: not the shell's or the environment's variables
            # (upper case: PATH, IFS, ...), arrays, or help_message.
            if ! [[ $__po_name =~ ^[a-z_][a-z0-9_]*$ ]] || [[ $__po_name == __po_* ]] \
                || [ "$__po_name" = help_message ] \
                || ! [[ $(declare -p "$__po_name" 2>/dev/null) == "declare -"[-x]" "* ]]; then
                echo "parse_options.sh: unknown option $__po_opt (see $(__co_prog) --help)" >&2
                exit 1
            fi
            # A boolean default accepts only booleans: catches "--use-gpu 1" and a forgotten value.
            case "${!__po_name-}" in
                true|false)
                    check_opt bool "$__po_opt" "$__po_value" ;;
            esac
            printf -v "$__po_name" '%s' "$__po_value"
            shift "$__po_shift" ;;
        *) break ;;
    esac
done

unset -v __po_cfg __po_i __po_arg __po_file __po_name __po_value __po_shift __po_opt
unset -f __po_die
true  # a sourced file returns its last status; make it success
