# Shared by scripts/demo, scripts/test and friends: system packages and the build.
# Sourced, not run.

RT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian packages ringtrain builds and tests with.
RT_PACKAGES=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
  libyaml-cpp-dev nlohmann-json3-dev googletest libgtest-dev libopenblas-dev libdnnl-dev libboost-context-dev
  python3-torch python3-h5py python3-numpy python3-matplotlib python3-venv bible-kjv
  slurmctld slurmd slurm-client munge)  # the last line: tests/cluster/test_slurm.sh

# Installs what is missing (apt, as root); elsewhere prints the exact packages and stops.
rt_ensure_packages() {
  local missing=()
  for p in "${RT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "ringtrain: missing system packages; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "ringtrain: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Open MPI refuses to run as root unless told; the tests and the demo run as root in CI.
rt_mpi_env() {
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_MCA_rmaps_base_oversubscribe=1
}

# Configures and builds into $1 with the extra CMake arguments that follow.
rt_build() {
  local dir=$1; shift
  cmake -S "$RT_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log"; return 1; }
  cmake --build "$dir" -j "$(nproc)"
}
