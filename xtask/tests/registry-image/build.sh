#!/usr/bin/env bash
# Builds the registry image the tests use, `xtask-test-registry:local`, FROM scratch with
# Debian's docker-registry binary and the libraries it links (no image can be pulled here).
# It behaves like `registry:2`: listens on :5000, stores under /var/lib/registry.
set -euo pipefail
tag="${1:-xtask-test-registry:local}"
bin="$(command -v docker-registry || true)"
[ -n "$bin" ] || { echo "docker-registry is not installed: apt-get install docker-registry" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no Docker daemon answers; skipping $tag" >&2; exit 0; }
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/bin" "$ctx/etc/docker/registry" "$ctx/var/lib/registry"
cp "$bin" "$ctx/bin/registry"
# The binary's shared libraries and loader, at the paths it was linked against.
ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$ctx$(dirname "$lib")"
  cp -L "$lib" "$ctx$lib"
done
cat > "$ctx/etc/docker/registry/config.yml" <<'YAML'
version: 0.1
log:
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
YAML
cat > "$ctx/Dockerfile" <<'DOCKER'
FROM scratch
COPY . /
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["/bin/registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
DOCKER
docker build -q -t "$tag" "$ctx" >/dev/null
echo "built $tag"
