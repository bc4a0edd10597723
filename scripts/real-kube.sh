#!/usr/bin/env bash
# A real Kubernetes control plane for the test tier (issue 27), built from Go sources.
#
#   scripts/real-kube.sh build [NAME...]  build the missing binaries (default: all of them)
#   scripts/real-kube.sh up               build what is missing, start etcd, kube-apiserver,
#                                          kube-controller-manager, kube-scheduler and kwok with
#                                          two GPU nodes, wait for /readyz and the nodes, print
#                                          KUBECONFIG=<path> as the last line
#   scripts/real-kube.sh down             stop what `up` started (pid files in the state dir)
#   scripts/real-kube.sh status           the state dir, the pids and whether they run
#   scripts/real-kube.sh restart-apiserver [FLAG...]
#                                          kill kube-apiserver's process group (SIGKILL, as a
#                                          crash) and start it again with the flags of `up`
#                                          plus FLAGs (e.g. --watch-cache=false), wait for /readyz
#   scripts/real-kube.sh etcd-compact     compact etcd to its current revision: every older
#                                          resourceVersion is gone (a watch from one gets 410)
#
# Everything listens on 127.0.0.1 only. Binaries go to $FOCUSQA_KUBE_CACHE (default
# ~/.cache/focusqa-kube)/<module>-<first 16 hex of sha256(go.mod go.sum flags)>/bin, so a
# changed pin builds anew and an unchanged one is reused. Builds run under `nice -n 19` with
# `go build -p 1` and GOMAXPROCS=2: on a shared 2-core machine they take only idle CPU.
# Versions and timings: kube-lab/README.md.
#
# Environment: FOCUSQA_KUBE_STATE (state dir, default <repo>/target/real-kube),
# FOCUSQA_KUBE_PORT (base port, default 26443: API server; +1 etcd client, +2 etcd peer,
# +3 controller-manager, +4 scheduler), FOCUSQA_KUBE_GPUS_PER_NODE (default 100, like the
# simulator's 200 split over two nodes), FOCUSQA_KUBE_CPUS_PER_NODE (default 256), FOCUSQA_KUBE_CACHE, GO (default: go on PATH, else
# /usr/local/go/bin/go).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=$ROOT/kube-lab
CACHE=${FOCUSQA_KUBE_CACHE:-$HOME/.cache/focusqa-kube}
STATE=${FOCUSQA_KUBE_STATE:-$ROOT/target/real-kube}
PORT=${FOCUSQA_KUBE_PORT:-26443}
ETCD_PORT=$((PORT + 1)) ETCD_PEER_PORT=$((PORT + 2)) CM_PORT=$((PORT + 3)) SCHED_PORT=$((PORT + 4))
GPUS=${FOCUSQA_KUBE_GPUS_PER_NODE:-100}
# Each analyzer requests 2 CPUs and 4Gi, each cleanup pod 100m and 128Mi: 200 of each need 420
# CPUs and 825Gi over the two nodes, and 400 pods.
CPUS=${FOCUSQA_KUBE_CPUS_PER_NODE:-256}
NODES=(gpu-node-1 gpu-node-2)
GPU_RESOURCE=nvidia.com/mig-1g.10gb
if [[ -z ${GO:-} ]]; then
  GO=$(command -v go || true)
  [[ -n $GO ]] || GO=/usr/local/go/bin/go
fi

log() { printf '[real-kube] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- building -------------------------------------------------------------------------------

# module of a binary, and the package to build
module_of() {
  case $1 in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo kube ;;
    etcd) echo etcd ;;
    kwok) echo kwok ;;
    *) die "unknown binary $1" ;;
  esac
}
package_of() {
  case $1 in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}

kube_version() { awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$LAB/kube/go.mod"; }

# the -ldflags of a module (hack/lib/version.sh of kubernetes sets the same variables)
ldflags_of() {
  local flags="-s -w"
  if [[ $1 == kube ]]; then
    local v minor k
    v=$(kube_version)
    minor=${v#v1.}
    minor=${minor%%.*}
    for k in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
      flags+=" -X $k.gitVersion=$v -X $k.gitMajor=1 -X $k.gitMinor=$minor"
      flags+=" -X $k.gitTreeState=clean -X $k.buildDate=1970-01-01T00:00:00Z"
    done
  fi
  echo "$flags"
}
BUILD_TAGS=selinux,notest

bin_dir() {
  local m=$1 key
  key=$(cat "$LAB/$m/go.mod" "$LAB/$m/go.sum" <(ldflags_of "$m") <(echo "$BUILD_TAGS") \
    <("$GO" env GOVERSION) | sha256sum | cut -c1-16)
  echo "$CACHE/$m-$key/bin"
}
bin_path() { echo "$(bin_dir "$(module_of "$1")")/$1"; }

build_one() {
  local name=$1 m dir out start
  m=$(module_of "$name")
  dir=$(bin_dir "$m")
  out=$dir/$name
  [[ -x $out ]] && return 0
  [[ -x $GO ]] || command -v "$GO" >/dev/null || die "no Go toolchain ($GO): cannot build $name"
  mkdir -p "$dir"
  log "building $name ($(package_of "$name")) into $dir (niced, -p 1)"
  start=$(date +%s)
  (cd "$LAB/$m" && CGO_ENABLED=0 GOMAXPROCS=2 GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local nice -n 19 \
    "$GO" build -p 1 -trimpath -tags "$BUILD_TAGS" -ldflags "$(ldflags_of "$m")" \
    -o "$out.tmp" "$(package_of "$name")") || { rm -f "$out.tmp"; die "go build of $name failed"; }
  mv "$out.tmp" "$out"
  printf '%s\t%s\t%ss\t%s\n' "$(date -u +%FT%TZ)" "$name" "$(($(date +%s) - start))" \
    "$(du -h "$out" | cut -f1)" >>"$dir/../build.log"
  log "built $name in $(($(date +%s) - start))s"
}

UP_BINARIES=(kube-apiserver etcd kube-controller-manager kube-scheduler kwok)
ALL_BINARIES=("${UP_BINARIES[@]}" kubectl)

cmd_build() {
  local names=("$@")
  ((${#names[@]})) || names=("${ALL_BINARIES[@]}")
  local n
  for n in "${names[@]}"; do build_one "$n"; done
  for n in "${names[@]}"; do echo "$(bin_path "$n")"; done
}

# --- certificates and kubeconfigs -----------------------------------------------------------

pki() {
  local p=$STATE/pki
  [[ -f $p/done ]] && return 0
  rm -rf "$p" && mkdir -p "$p" && chmod 700 "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=focusqa-real-kube-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  # serving certificate of the API server
  cat >"$p/apiserver.ext" <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  sign "$p" apiserver "/CN=kube-apiserver" "$p/apiserver.ext"
  # client certificates: CN is the user, O the group
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$p/client.ext"
  sign "$p" admin "/O=system:masters/CN=focusqa-admin" "$p/client.ext"
  sign "$p" controller-manager "/CN=system:kube-controller-manager" "$p/client.ext"
  sign "$p" scheduler "/CN=system:kube-scheduler" "$p/client.ext"
  sign "$p" kwok "/O=system:masters/CN=kwok-controller" "$p/client.ext"
  sign "$p" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$p/client.ext"
  # service-account token signing key
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  touch "$p/done"
}
sign() {
  local p=$1 name=$2 subj=$3 ext=$4
  openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$p/$name.key" -out "$p/$name.csr" 2>/dev/null
  openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$p/$name.crt" 2>/dev/null
}
kubeconfig() { # user file
  local user=$1 out=$2 p=$STATE/pki
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: focusqa-real-kube
  cluster:
    server: https://127.0.0.1:$PORT
    certificate-authority-data: $(base64 -w0 <"$p/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$p/$user.crt")
    client-key-data: $(base64 -w0 <"$p/$user.key")
contexts:
- name: focusqa-real-kube
  context:
    cluster: focusqa-real-kube
    user: $user
    namespace: default
current-context: focusqa-real-kube
EOF
  chmod 600 "$out"
}

# --- processes ------------------------------------------------------------------------------

running() { [[ -f $STATE/$1.pid ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }
start() { # name binary args...
  local name=$1 bin=$2
  shift 2
  if running "$name"; then
    log "$name already running (pid $(cat "$STATE/$name.pid"))"
    return 0
  fi
  # setsid: its own process group, so `down` ends it and its children and nothing else
  # append: a restarted component's log follows the earlier run's
  setsid "$bin" "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
  # its command line, one argument a line, for `restart-apiserver`
  printf '%s\n' "$bin" "$@" >"$STATE/$name.args"
}
api() { # curl as the admin: method path [body]
  local p=$STATE/pki
  curl -sS --max-time 10 --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
    -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} "https://127.0.0.1:$PORT$2"
}
wait_for() { # what seconds command...
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what not ready after ${secs}s (logs: $STATE/logs)"
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_json() {
  local name=$1 res
  res="{\"cpu\":\"$CPUS\",\"memory\":\"1Ti\",\"ephemeral-storage\":\"1873933640Ki\",\"pods\":\"500\",\"$GPU_RESOURCE\":\"$GPUS\"}"
  cat <<EOF
{"apiVersion":"v1","kind":"Node","metadata":{"name":"$name",
 "annotations":{"kwok.x-k8s.io/node":"fake","node.alpha.kubernetes.io/ttl":"0"},
 "labels":{"type":"kwok","kubernetes.io/arch":"amd64","kubernetes.io/hostname":"$name","kubernetes.io/os":"linux",
  "nvidia.com/mig.config":"all-1g.10gb","node-role.kubernetes.io/gpu":""}},
 "spec":{},
 "status":{"capacity":$res,"allocatable":$res}}
EOF
}

cmd_up() {
  local t0 b
  t0=$(date +%s)
  for b in "${UP_BINARIES[@]}"; do build_one "$b"; done
  command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"
  command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
  mkdir -p "$STATE/logs" "$STATE/etcd"
  if ! running kube-apiserver; then
    for b in "$PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$CM_PORT" "$SCHED_PORT"; do
      port_free "$b" || die "port $b on 127.0.0.1 is taken (FOCUSQA_KUBE_PORT sets the base)"
    done
  fi
  pki
  local p=$STATE/pki
  for u in admin controller-manager scheduler kwok; do kubeconfig "$u" "$STATE/$u.kubeconfig"; done

  start etcd "$(bin_path etcd)" --name focusqa --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "focusqa=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
    --quota-backend-bytes 2147483648 --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  start kube-apiserver "$(bin_path kube-apiserver)" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$PORT" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --cert-dir "$STATE/apiserver" --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" \
    --kubelet-client-certificate "$p/apiserver-kubelet-client.crt" --kubelet-client-key "$p/apiserver-kubelet-client.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 --authorization-mode Node,RBAC \
    --endpoint-reconciler-type none --allow-privileged=true
  # `api` succeeds on any answer: ready means the body is `ok` (every post-start hook done, the
  # RBAC bootstrap roles among them; the controller-manager exits if it starts before them).
  wait_for "kube-apiserver /readyz" 90 apiserver_ready

  start kube-controller-manager "$(bin_path kube-controller-manager)" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$CM_PORT" --leader-elect=false \
    --use-service-account-credentials --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --kube-api-qps 200 --kube-api-burst 400
  start kube-scheduler "$(bin_path kube-scheduler)" \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false
  start kwok "$(bin_path kwok)" --kubeconfig "$STATE/kwok.kubeconfig" --config "$LAB/kwok/stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 10.0.1.1 --cidr 10.0.2.0/24 --node-lease-duration-seconds 40

  local n
  for n in "${NODES[@]}"; do
    api GET "/api/v1/nodes/$n" 2>/dev/null | grep -q '"kind": "Node"' ||
      api POST /api/v1/nodes "$(node_json "$n")" >/dev/null
  done
  wait_for "nodes Ready (kwok)" 60 nodes_ready
  wait_for "kube-controller-manager" 60 curl -sfk "https://127.0.0.1:$CM_PORT/healthz"
  wait_for "kube-scheduler" 60 curl -sfk "https://127.0.0.1:$SCHED_PORT/healthz"
  # the service-account controller makes `default`, which admission needs for every pod
  wait_for "default service account" 60 sh -c "$(declare -f api); STATE='$STATE' PORT='$PORT'; api GET /api/v1/namespaces/default/serviceaccounts/default | grep -q '\"kind\": \"ServiceAccount\"'"
  log "up in $(($(date +%s) - t0))s; state $STATE; down: scripts/real-kube.sh down"
  echo "KUBECONFIG=$STATE/admin.kubeconfig"
}
apiserver_ready() { [[ $(api GET /readyz 2>/dev/null) == ok ]]; }
nodes_ready() {
  local n
  for n in "${NODES[@]}"; do
    api GET "/api/v1/nodes/$n" | tr -d ' \n' | grep -q '"type":"Ready","status":"True"' || return 1
  done
}

cmd_down() {
  local n pid any=0
  for n in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [[ -f $STATE/$n.pid ]] || continue
    pid=$(cat "$STATE/$n.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      local i
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
      log "stopped $n (pid $pid)"
      any=1
    fi
    rm -f "$STATE/$n.pid"
  done
  ((any)) || log "nothing running"
  # a fresh etcd next time: no objects left from an earlier run
  rm -rf "$STATE/etcd"
}

# Stop one component's process group and wait for it to exit (SIGKILL: no graceful shutdown).
kill_one() {
  local name=$1 pid i
  running "$name" || return 0
  pid=$(cat "$STATE/$name.pid")
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  # dead, or a zombie its new parent has not reaped yet (`kill -0` still succeeds on one)
  for ((i = 0; i < 100; i++)); do
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) =~ ^(Z|X|)$ ]] && break
    sleep 0.05
  done
  rm -f "$STATE/$name.pid"
}

cmd_restart_apiserver() {
  local t0 args=()
  t0=$(date +%s%N)
  [[ -f $STATE/kube-apiserver.args ]] || die "no kube-apiserver was started in $STATE (run up first)"
  # the flags of `up` (the first start's, kept aside), then this restart's
  [[ -f $STATE/kube-apiserver.args.up ]] || cp "$STATE/kube-apiserver.args" "$STATE/kube-apiserver.args.up"
  mapfile -t args <"$STATE/kube-apiserver.args.up"
  kill_one kube-apiserver
  log "kube-apiserver killed after $((($(date +%s%N) - t0) / 1000000)) ms"
  wait_for "port $PORT free" 30 port_free "$PORT"
  start kube-apiserver "${args[@]}" "$@"
  wait_for "kube-apiserver /readyz" 90 apiserver_ready
  log "kube-apiserver back in $((($(date +%s%N) - t0) / 1000000)) ms${1:+ with $*}"
}

# Compaction through etcd's gRPC gateway: the revision now, then everything before it dropped.
cmd_etcd_compact() {
  local rev
  rev=$(curl -sf -X POST "http://127.0.0.1:$ETCD_PORT/v3/kv/range" -d '{"key":"AA==","limit":1}' |
    sed -n 's/.*"revision":"\{0,1\}\([0-9]*\).*/\1/p')
  [[ -n $rev ]] || die "etcd at 127.0.0.1:$ETCD_PORT gave no revision"
  curl -sf -X POST "http://127.0.0.1:$ETCD_PORT/v3/kv/compaction" -d "{\"revision\":\"$rev\",\"physical\":true}" >/dev/null ||
    die "etcd compaction at revision $rev failed"
  log "etcd compacted at revision $rev"
  echo "$rev"
}

cmd_status() {
  local n
  echo "state: $STATE"
  for n in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    if running "$n"; then echo "$n: running (pid $(cat "$STATE/$n.pid"))"; else echo "$n: stopped"; fi
  done
  for n in "${ALL_BINARIES[@]}"; do
    if [[ -x $(bin_path "$n") ]]; then echo "binary $n: $(bin_path "$n")"; else echo "binary $n: not built"; fi
  done
}

case ${1:-} in
  build) shift; cmd_build "$@" ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart-apiserver) shift; cmd_restart_apiserver "$@" ;;
  etcd-compact) cmd_etcd_compact ;;
  *) echo "usage: $0 build [NAME...] | up | down | status | restart-apiserver [FLAG...] | etcd-compact" >&2; exit 2 ;;
esac
