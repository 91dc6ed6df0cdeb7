#!/usr/bin/env bash
# Container prerequisites for the harness and the lab, idempotent:
#   1. Debian packages the tests need (Docker engine, Compose, debootstrap, Redis, PostgreSQL, nginx, Chromium;
#      wrk for `make bench`)
#   2. a running dockerd
#   3. the local base images (no registry is reachable), rebuilt only when their recipe changes:
#      Debian bookworm for everything, and trixie hosts for the Molecule platforms that prove the
#      roles on Debian 13 (molecule/stack)
# Usage: scripts/prereqs.sh [packages|docker|images|all]   (default: all)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

APT_PACKAGES=(docker.io docker-compose iptables debootstrap redis-server postgresql nginx-light chromium curl wrk prometheus)
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The host images exist for each suite the roles claim (meta/main.yml platforms); the application,
# redis and postgres images only for the first.
DEBIAN_SUITES=(bookworm trixie)

log() { printf '\033[1;34m[prereqs]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[prereqs] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

ensure_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && { log "Debian packages present"; return; }
  is_root || die "missing Debian packages: ${missing[*]}. Run as root, or install them: sudo apt-get install -y ${missing[*]}"
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: this harness supports Debian/Ubuntu machines"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_dockerd() {
  if docker info >/dev/null 2>&1; then log "dockerd answers"; return; fi
  command -v dockerd >/dev/null || die "no dockerd binary: run 'scripts/prereqs.sh packages' as root (installs docker.io)"
  is_root || die "dockerd is not running and starting it needs root: run 'sudo scripts/prereqs.sh docker', or start Docker and add yourself to the docker group"
  log "starting dockerd (log: /var/log/dockerd.log)"
  # setsid: the daemon must outlive this shell and the make process that started it.
  setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  local i
  for i in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { log "dockerd up after ${i}s"; return; }
    sleep 1
  done
  tail -20 /var/log/dockerd.log >&2 || true
  die "dockerd did not answer within 60 s (see /var/log/dockerd.log above)"
}

# Bump when build_base's procedure changes; the base image is rebuilt then.
BASE_RECIPE_VERSION=1

# The cache key of an image: its recipe, plus what it inherits (CA bundle, parent image id).
recipe_hash() {
  { cat "$@"; echo "$BASE_RECIPE_VERSION"; } | sha256sum | cut -c1-16
}

docker_build() {  # name hash context [docker build options...]
  local log=/tmp/votingapp-build-${1//[:\/]/_}.log
  # The classic builder: docker.io from Debian ships without buildx.
  DOCKER_BUILDKIT=0 docker build --label "votingapp.recipe=$2" -t "$1" "${@:4}" "$3" >"$log" 2>&1 \
    || { tail -30 "$log" >&2; die "building $1 failed (full log: $log)"; }
}

image_current() {  # image hash
  [ "$(docker image inspect -f '{{ index .Config.Labels "votingapp.recipe" }}' "$1" 2>/dev/null)" = "$2" ]
}

build_base() {  # suite
  local suite=$1 name=votingapp-base:$1 hash
  hash=$(recipe_hash "$repo/images/base/Dockerfile" /etc/ssl/certs/ca-certificates.crt <(echo "$suite"))
  if image_current "$name" "$hash"; then log "$name is current"; return; fi
  is_root || die "building $name uses debootstrap, which needs root"
  local rootfs
  rootfs=$(mktemp -d /tmp/votingapp-rootfs.XXXXXX)
  log "debootstrap $suite minbase into $rootfs (about 40 s)"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$rootfs" "$DEBIAN_MIRROR" >/tmp/votingapp-debootstrap.log 2>&1 \
    || { tail -20 /tmp/votingapp-debootstrap.log >&2; die "debootstrap failed (log above): is $DEBIAN_MIRROR reachable?"; }
  # Trust the same extra CAs as this machine, so pip inside containers can reach PyPI.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "votingapp-rootfs:$suite" >/dev/null
  rm -rf "$rootfs"
  docker_build "$name" "$hash" "$repo/images/base" --build-arg "SUITE=$suite"
  log "built $name"
}

build_from_dockerfile() {  # name dir parent [suite]
  local name=$1 dir=$2 parent=$3 hash extra=() args=()
  # Recipes built for several suites take it as the SUITE build argument.
  [ -z "${4:-}" ] || args=(--build-arg "SUITE=$4")
  # Files the Dockerfile COPYs count too (a recipe of only a Dockerfile hashes as it always did).
  mapfile -t extra < <(find "$dir" -type f ! -name Dockerfile | LC_ALL=C sort)
  hash=$(recipe_hash "$dir/Dockerfile" "${extra[@]}" <(docker image inspect -f '{{.Id}}' "$parent"))
  if image_current "$name" "$hash"; then log "$name is current"; return; fi
  log "building $name"
  docker_build "$name" "$hash" "$dir" "${args[@]}"
  log "built $name"
}

ensure_images() {
  local suite
  for suite in "${DEBIAN_SUITES[@]}"; do
    build_base "$suite"
    build_from_dockerfile "votingapp-host:$suite" "$repo/images/host" "votingapp-base:$suite" "$suite"
    build_from_dockerfile "votingapp-host-docker:$suite" "$repo/images/host-docker" "votingapp-host:$suite" "$suite"
  done
  build_from_dockerfile votingapp-python:bookworm "$repo/images/python" votingapp-base:bookworm
  build_from_dockerfile votingapp-redis:7 "$repo/images/redis" votingapp-base:bookworm
  # PostgreSQL for the Docker Compose local mode (app_src/compose.yaml), like the official postgres:15.
  build_from_dockerfile votingapp-postgres:15 "$repo/images/postgres" votingapp-base:bookworm
}

case "${1:-all}" in
  packages) ensure_packages ;;
  docker) ensure_packages; ensure_dockerd ;;
  images) ensure_dockerd; ensure_images ;;
  all) ensure_packages; ensure_dockerd; ensure_images ;;
  *) die "unknown step '$1': use packages, docker, images or all" ;;
esac
