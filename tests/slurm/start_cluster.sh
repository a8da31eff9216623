#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine for the tests, as root and without systemd:
# Debian's slurm-wlm and munge, proctrack/linuxproc, task/none, select/cons_tres, no accounting (the
# tests query job status with squeue, kept for an hour by MinJobAge), and two fake GPUs: character
# devices that SLURM hands out as gres, which tests GPU requests but not CUDA. Idempotent.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "start_cluster.sh: run as root (it installs packages and starts daemons)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 2048 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
for index in 0 1; do [ -e "/dev/nvidia$index" ] || mknod "/dev/nvidia$index" c 1 3; done

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=annealscope
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
GresTypes=gpu
DefMemPerCPU=2000
MinJobAge=3600
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$memory Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
printf 'NodeName=%s Name=gpu File=/dev/nvidia[0-1]\n' "$host" > /etc/slurm/gres.conf

if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd

for _ in $(seq 60); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle*|mix*|alloc*) break ;;
        down*|drain*) scontrol update nodename="$host" state=resume || true ;;
    esac
    sleep 1
done
sinfo -N -o "%N %T %c %m %G" || { tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2; exit 1; }
case "$(sinfo -h -N -o %T | head -1)" in
    idle*|mix*|alloc*) echo "SLURM cluster up on $host: $cpus CPUs, ${memory} MB, 2 fake GPUs" ;;
    *) echo "start_cluster.sh: node $host is not up" >&2; tail -20 /var/log/slurm/slurmd.log >&2; exit 1 ;;
esac
