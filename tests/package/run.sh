#!/usr/bin/env bash
# Package tests: diffscope as its users get it.
#
#   tests/package/run.sh SOURCE_DIR WORK_DIR [STEP...]     (no STEP: all of them, in order)
#
# Steps (CTest runs the first six and the last as package_<step>, Meson the last three):
#   install           configure + build + install diffscope into WORK_DIR/prefix
#   find_package      consumer through find_package(diffscope 0.1) from that prefix, and
#                     from the build tree (export())
#   add_subdirectory  consumer through add_subdirectory(<source>)
#   fetchcontent      consumer through FetchContent (SOURCE_DIR)
#   pkg_config        `pkg-config --cflags diffscope` from the prefix, plain g++; also a
#                     DIFFSCOPE_DISABLE build without any CUDA include
#   meson_subproject  Meson project using dependency('diffscope') with diffscope as subproject
#   meson_pkg_config  install with Meson into WORK_DIR/meson-prefix, consume its diffscope.pc
#   version_mismatch  a VERSION that disagrees with version.hpp fails CMake and Meson configure
# Every consumer builds tests/package/consumer.cpp and must print
# "diffscope consumer <VERSION> ok". Exit 77 (skipped): a tool a step needs is missing, or
# Meson is older than meson.build's meson_version (version_mismatch: after its CMake half).
# Nothing is written into SOURCE_DIR.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 SOURCE_DIR WORK_DIR [STEP...]" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
mkdir -p "$2"
work=$(cd "$2" && pwd)
shift 2
steps=("$@")
if [[ ${#steps[@]} -eq 0 ]]; then
  steps=(install find_package add_subdirectory fetchcontent pkg_config meson_subproject
    meson_pkg_config version_mismatch)
fi

here=$src/tests/package
prefix=$work/prefix
version=$(tr -d '[:space:]' <"$src/VERSION")
expected="diffscope consumer $version ok"
cxx=${CXX:-c++}
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
# Keep it light: these run next to other tests.
export CMAKE_BUILD_PARALLEL_LEVEL=2
# Consumers must not pick up the caller's CMake/pkg-config environment.
unset PKG_CONFIG_PATH CMAKE_PREFIX_PATH diffscope_DIR

log() { printf '== package %s: %s\n' "$step" "$*"; }
fail() {
  printf 'FAIL package %s: %s\n' "$step" "$*" >&2
  exit 1
}
need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "SKIP package $step: '$1' not found"
    exit 77
  }
}
# The oldest Meson meson.build accepts (its meson_version: '>=X'); an older one on PATH is
# skipped like a missing one, with the reason.
meson_min=$(sed -n "s/.*meson_version: *'>= *\([0-9.]*\)'.*/\1/p" "$src/meson.build" | head -n1)
# Why the meson on PATH cannot be used ("" when it can).
meson_unusable() {
  local have
  command -v meson >/dev/null 2>&1 || { echo "'meson' not found"; return; }
  have=$(meson --version 2>/dev/null) || { echo "'meson --version' failed"; return; }
  if [[ -n $meson_min && $(printf '%s\n%s\n' "$meson_min" "$have" | sort -V | head -n1) != "$meson_min" ]]; then
    echo "meson $have is older than $meson_min"
  fi
}
need_meson() {
  local why
  why=$(meson_unusable)
  if [[ -n $why ]]; then
    echo "SKIP package $step: $why"
    exit 77
  fi
}
# Runs a consumer and checks what it prints.
check_run() {
  local out
  out=$("$@") || fail "$* exited with $?: $out"
  printf '%s\n' "$out"
  [[ $out == "$expected"* ]] || fail "$*: expected '$expected...', got '$out'"
}
# A cmake consumer project: configure, build, run both programs.
cmake_consumer() {
  local dir=$1 build=$2
  shift 2
  rm -rf "$build"
  cmake -S "$dir" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >"$build.log" 2>&1 ||
    { cat "$build.log"; fail "configure of $dir failed"; }
  cmake --build "$build" >>"$build.log" 2>&1 || { cat "$build.log"; fail "build of $dir failed"; }
  check_run "$build/consumer"
  check_run "$build/consumer_collector"
}

for step in "${steps[@]}"; do
  case $step in
    install)
      need cmake
      rm -rf "$work/build" "$prefix"
      log "configure, build, install into $prefix"
      cmake -S "$src" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$prefix" -DDIFFSCOPE_INSTALL=ON -DDIFFSCOPE_BUILD_TESTS=OFF \
        -DDIFFSCOPE_BUILD_EXAMPLES=OFF -DDIFFSCOPE_BUILD_BENCHMARKS=OFF \
        -DDIFFSCOPE_BUILD_TOOLS=OFF >"$work/build.log" 2>&1 ||
        { cat "$work/build.log"; fail "configure failed"; }
      cmake --build "$work/build" >>"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "build failed"; }
      cmake --install "$work/build" >>"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "install failed"; }
      for f in include/diffscope/scope.hpp include/diffscope/version.hpp \
        share/cmake/diffscope/diffscopeConfig.cmake \
        share/cmake/diffscope/diffscopeConfigVersion.cmake \
        share/cmake/diffscope/diffscopeTargets.cmake share/pkgconfig/diffscope.pc; do
        [[ -f $prefix/$f ]] || fail "$f was not installed"
      done
      # The installed package must not point back at the build or source tree.
      if grep -rlF -e "$work/build" -e "$src" "$prefix/share"; then
        fail "installed package files name the build or source tree (files above)"
      fi
      log "ok"
      ;;
    find_package)
      need cmake
      [[ -f $prefix/share/cmake/diffscope/diffscopeConfig.cmake ]] || fail "run the install step first"
      log "from the install prefix"
      cmake_consumer "$here/find_package" "$work/find_package" -DCMAKE_PREFIX_PATH="$prefix"
      log "from the build tree (export())"
      cmake_consumer "$here/find_package" "$work/find_package_build_tree" \
        -Ddiffscope_DIR="$work/build"
      log "a version the package does not satisfy is rejected"
      rm -rf "$work/find_package_v9"
      mkdir -p "$work/find_package_v9"
      sed 's/find_package(diffscope 0.1 REQUIRED)/find_package(diffscope 9.0 REQUIRED)/' \
        "$here/find_package/CMakeLists.txt" >"$work/find_package_v9/CMakeLists.txt"
      cp "$here/consumer.cpp" "$work/consumer.cpp"
      if cmake -S "$work/find_package_v9" -B "$work/find_package_v9/build" "${generator[@]}" \
        -DCMAKE_PREFIX_PATH="$prefix" >"$work/find_package_v9.log" 2>&1; then
        fail "find_package(diffscope 9.0) succeeded against $version"
      fi
      log "ok"
      ;;
    add_subdirectory)
      need cmake
      cmake_consumer "$here/add_subdirectory" "$work/add_subdirectory" -DDIFFSCOPE_SOURCE_DIR="$src"
      log "ok"
      ;;
    fetchcontent)
      need cmake
      cmake_consumer "$here/add_subdirectory" "$work/fetchcontent" -DDIFFSCOPE_SOURCE_DIR="$src" \
        -DDIFFSCOPE_VIA_FETCHCONTENT=ON
      log "ok"
      ;;
    pkg_config | meson_pkg_config)
      need pkg-config
      pc_prefix=$prefix
      if [[ $step == meson_pkg_config ]]; then
        need_meson
        pc_prefix=$work/meson-prefix
        rm -rf "$work/meson-build" "$pc_prefix"
        log "meson setup + install into $pc_prefix"
        {
          meson setup "$work/meson-build" "$src" --prefix="$pc_prefix" -Dtests=disabled \
            -Dexamples=disabled -Dbenchmarks=disabled -Dtools=disabled &&
            meson install -C "$work/meson-build"
        } >"$work/meson-build.log" 2>&1 || { cat "$work/meson-build.log"; fail "meson install failed"; }
      fi
      [[ -f $pc_prefix/share/pkgconfig/diffscope.pc ]] || fail "no diffscope.pc under $pc_prefix"
      export PKG_CONFIG_PATH=$pc_prefix/share/pkgconfig
      [[ $(pkg-config --modversion diffscope) == "$version" ]] || fail "pkg-config --modversion"
      cflags=$(pkg-config --cflags diffscope)
      libs=$(pkg-config --libs diffscope)
      log "cflags: $cflags"
      # Header-only: a Libs entry would break consumers (doctest#1098).
      [[ -z ${libs// /} ]] || fail "diffscope.pc has Libs ('$libs'); it must have Cflags only"
      found=""
      for flag in $cflags; do
        if [[ $flag == -I* && -f ${flag#-I}/diffscope/scope.hpp ]] &&
          [[ $(realpath "${flag#-I}") == "$(realpath "$pc_prefix/include")" ]]; then found=1; fi
      done
      [[ -n $found ]] || fail "cflags lack -I for $pc_prefix/include"
      # shellcheck disable=SC2086  # cflags is a list of flags
      "$cxx" -std=c++17 $cflags "$here/consumer.cpp" -o "$work/$step-consumer" -ldl
      check_run "$work/$step-consumer"
      log "DIFFSCOPE_DISABLE build with only diffscope's include dir"
      "$cxx" -std=c++17 -DDIFFSCOPE_DISABLE -I"$pc_prefix/include" "$here/consumer.cpp" \
        -o "$work/$step-consumer-disabled"
      check_run "$work/$step-consumer-disabled"
      unset PKG_CONFIG_PATH
      log "ok"
      ;;
    meson_subproject)
      need_meson
      need ninja
      proj=$work/meson_subproject
      rm -rf "$proj"
      mkdir -p "$proj/subprojects"
      cp "$here/meson_subproject/meson.build" "$here/consumer.cpp" "$proj/"
      ln -s "$src" "$proj/subprojects/diffscope"
      {
        meson setup "$proj/build" "$proj" --force-fallback-for=diffscope &&
          meson compile -C "$proj/build" -j 2
      } >"$proj.log" 2>&1 || { cat "$proj.log"; fail "meson consumer failed"; }
      # As a subproject, diffscope builds no tests of its own.
      if [[ -e $proj/build/subprojects/diffscope/tests ]]; then
        fail "diffscope built its tests as a subproject"
      fi
      check_run "$proj/build/consumer"
      check_run "$proj/build/consumer_collector"
      log "ok"
      ;;
    version_mismatch)
      # A VERSION that disagrees with version.hpp must stop CMake and Meson at configure.
      copy=$work/version_mismatch
      rm -rf "$copy"
      mkdir -p "$copy"
      cp -r "$src/CMakeLists.txt" "$src/cmake" "$src/include" "$copy/"
      cp "$src/meson.build" "$src/meson.options" "$copy/"
      echo "9.9.9" >"$copy/VERSION"
      meson_skipped=$(meson_unusable)
      for tool in cmake meson; do
        command -v $tool >/dev/null 2>&1 || continue
        [[ $tool == meson && -n $meson_skipped ]] && continue
        if [[ $tool == cmake ]]; then
          cmd=(cmake -S "$copy" -B "$copy/build-cmake" "${generator[@]}")
        else
          cmd=(meson setup "$copy/build-meson" "$copy")
        fi
        if "${cmd[@]}" >"$copy/$tool.log" 2>&1; then
          fail "$tool configured with VERSION 9.9.9 and version.hpp $version"
        fi
        grep -q "version mismatch" "$copy/$tool.log" || { cat "$copy/$tool.log"; fail "$tool failed without saying why"; }
        log "$tool: $(grep -m1 -o 'version mismatch.*' "$copy/$tool.log")"
      done
      if [[ -n $meson_skipped ]]; then
        echo "SKIP package $step: the Meson half: $meson_skipped (the CMake half passed)"
        exit 77
      fi
      log "ok"
      ;;
    *)
      echo "unknown step '$step'" >&2
      exit 2
      ;;
  esac
done
