# How recipe stages run their jobs; sourced by asr.sh after path.sh.
#
#   train_cmd   CPU jobs (feature extraction, data preparation)
#   decode_cmd  decoding jobs
#   cuda_cmd    jobs that need a GPU
#
# All backends take the same arguments: $train_cmd [options] JOB=1:N <logfile> <command> ...
# (see utils/run.sh). Choose the backend with the environment variable cmd_backend:
#   local  (default) run on this machine with utils/run.sh; --mem/--gpu etc. are ignored
#   slurm  submit to a Slurm cluster with utils/slurm.sh, e.g. cmd_backend=slurm ./run.sh
#          GPU jobs take their defaults from these environment variables:
#            slurm_gpus       GPUs per node        [1]
#            slurm_gpu_mem    memory per node      [32G]
#            slurm_time       time limit           [24:00:00]
#            slurm_partition  partition            [the cluster's default]
#          CPU jobs get --mem 4G (edit below); set their partition, account etc. with
#          Slurm's own variables (SBATCH_PARTITION, SBATCH_ACCOUNT, ...).
#
# Options given later on the command line win, so a stage that needs a bigger job adds
# them after the command variable; a training job on N GPUs on each of M nodes is
#   ${cuda_cmd} --gpu N --num-nodes M <logfile> <command> ...
# (utils/run.sh ignores both; utils/slurm.sh runs the command once per node, see there).
cmd_backend=${cmd_backend:-local}

case "$cmd_backend" in
    local)
        train_cmd="utils/run.sh"
        decode_cmd="utils/run.sh"
        cuda_cmd="utils/run.sh"
        ;;
    slurm)
        slurm_gpus=${slurm_gpus:-1}
        slurm_gpu_mem=${slurm_gpu_mem:-32G}
        slurm_time=${slurm_time:-24:00:00}
        slurm_partition=${slurm_partition:-}
        train_cmd="utils/slurm.sh --mem 4G"
        decode_cmd="utils/slurm.sh --mem 4G"
        cuda_cmd="utils/slurm.sh --gpu $slurm_gpus --mem $slurm_gpu_mem --time $slurm_time"
        cuda_cmd+="${slurm_partition:+ --partition $slurm_partition}"
        ;;
    *)
        echo "cmd.sh: unknown cmd_backend '$cmd_backend' (use local or slurm)" >&2
        return 1
        ;;
esac
export train_cmd decode_cmd cuda_cmd
