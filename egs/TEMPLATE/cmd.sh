# How recipe stages run their jobs; sourced by asr.sh after path.sh.
#
#   train_cmd   CPU jobs (feature extraction, data preparation)
#   decode_cmd  decoding jobs
#   cuda_cmd    jobs that need a GPU
#
# All backends take the same arguments: $train_cmd [options] JOB=1:N <logfile> <command> ...
# (see utils/run.sh). Choose the backend with the environment variable cmd_backend:
#   local  (default) run on this machine with utils/run.sh; --mem/--gpu etc. are ignored
#   slurm  submit to a Slurm cluster with utils/slurm.sh; edit the options below
#          (memory, GPUs, --partition, --time) to suit your cluster, e.g.
#          cmd_backend=slurm ./run.sh
cmd_backend=${cmd_backend:-local}

case "$cmd_backend" in
    local)
        train_cmd="utils/run.sh"
        decode_cmd="utils/run.sh"
        cuda_cmd="utils/run.sh"
        ;;
    slurm)
        train_cmd="utils/slurm.sh --mem 4G"
        decode_cmd="utils/slurm.sh --mem 4G"
        cuda_cmd="utils/slurm.sh --gpu 1 --mem 16G"
        ;;
    *)
        echo "cmd.sh: unknown cmd_backend '$cmd_backend' (use local or slurm)" >&2
        return 1
        ;;
esac
export train_cmd decode_cmd cuda_cmd
