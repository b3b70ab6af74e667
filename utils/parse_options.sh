#!/usr/bin/env bash
# Command-line options for recipe scripts, Kaldi style. Source it after setting defaults:
#
#   nj=4; use_gpu=false
#   help_message="Usage: $0 [--nj N] [--use-gpu true|false] <data>"
#   . utils/parse_options.sh
#   # "$@" now holds the positional arguments
#
# --foo-bar VALUE and --foo_bar VALUE (or --foo-bar=VALUE) set the variable foo_bar, which the
# script must have defined; an undefined one is an error. A variable whose current value is
# true or false accepts only true or false. --config FILE sources FILE (shell assignments)
# before the other options are applied, so the command line wins over the file.
# --help / -h prints $help_message and exits 0. Parsing stops at the first non-option or "--".

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "parse_options.sh: this file must be sourced (. utils/parse_options.sh), not run" >&2
    exit 1
fi

# Variables are prefixed so they do not clash with the calling script's own.
__po_die() { echo "parse_options.sh: $*" >&2; exit 1; }

# Pass 1: config files, so that later command-line options override their values.
__po_i=1
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
        --config) shift 2 ;;
        --config=*) shift ;;
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
            if ! [[ $__po_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [[ $__po_name == __po_* ]] \
                || ! declare -p "$__po_name" >/dev/null 2>&1; then
                __po_die "unknown option $__po_opt"
            fi
            # A boolean default accepts only booleans: catches "--use-gpu 1" and a forgotten value.
            case "${!__po_name-}" in
                true|false)
                    [ "$__po_value" = true ] || [ "$__po_value" = false ] \
                        || __po_die "option $__po_opt takes true or false, got '$__po_value'" ;;
            esac
            printf -v "$__po_name" '%s' "$__po_value"
            shift "$__po_shift" ;;
        *) break ;;
    esac
done

unset -v __po_i __po_arg __po_file __po_name __po_value __po_shift __po_opt
unset -f __po_die
true  # a sourced file returns its last status; make it success
