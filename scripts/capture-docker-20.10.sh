#!/usr/bin/env bash
# Capture the real iptables rules that Docker 20.10 (dockerd) writes, one
# scenario at a time, as test fixtures for Portcullis.
#
#   bash scripts/capture-docker-20.10.sh [SCENARIO...]     (all by default)
#
# Needs root, dockerd 20.10.x, iptables (nf_tables backend), nft, nsenter,
# a static busybox at /bin/busybox.  Each scenario gets a fresh network
# namespace and a fresh dockerd (private data-root/exec-root/socket) that runs
# inside it, so the host's own (root) namespace ruleset is never touched.
# Every subnet chosen here is from 198.18.0.0/15.
#
# Output: Tests/PortcullisTests/Fixtures/docker-20.10/NAME.rules
#   - `##` header: daemon flags, the exact commands run (in order) and what
#     Docker picked (addresses, host ports);
#   - `iptables-save` inside the namespace, `# ` lines removed, chain
#     counters set to [0:0];
#   - a `#### ip6tables` line, then `ip6tables-save`, treated the same way.
# and NAME.nft = `nft list ruleset` in the namespace (rule counters set to
# `counter packets 0 bytes 0`).  A scenario that fails leaves NAME.error
# instead (and no .rules/.nft).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/Tests/PortcullisTests/Fixtures/docker-20.10
NS_PREFIX=pc2010-
ALL_SCENARIOS=(
  s01-fresh s02-one-publish s03-hostip-udp s04-range s05-icc-off-daemon
  s06-two-networks s07-internal s08-proxy-off s09-masq-off s10-multi-network
  s11-host-binding s12-publish-all s13-icc-off-network s14-mac-and-default
  s15-many-ports-order
  s16-ports-sort-mixed s17-publish-all-order
  s18-ip6tables-default-bridge s19-ip6tables-user-networks s20-ip6tables-host-addresses
  s21-ip6tables-proxy-off s22-ip6tables-without-ipv6 s23-ip6tables-publish-all
  s24-ip6tables-publish-all-proxy-off
)
# s16/s17 are extras beyond the original list of 15: they pin down how 20.10
# orders port bindings (sorted, not command-line order) and allocates -P ports.
# s18-s22 run the daemon with its experimental ip6tables on (IPv6: ULA
# prefixes fd98:18::/32).

# ---------------------------------------------------------------- state ----
WORK=""        # shared temp dir (rootfs tarball)
RUN_CONTAINERD_EXISTED=1
NS=""          # current namespace name
D=""           # current daemon dir
DPID=""        # current dockerd pid
SCEN=""        # current scenario name
FLAGS=()       # scenario daemon flags (beyond the fixed private ones)
LOG=()         # header lines: commands run, in order
INFO=()        # header lines: what Docker picked
ERR=""         # error text of the failing step

die() { echo "capture-docker-20.10: $*" >&2; exit 1; }

ns_inode() { stat -L -c %i "/var/run/netns/$1" 2>/dev/null; }

# PIDs of processes that this run started for the current scenario: anything
# living in our namespace (dockerd, containerd, shims, docker-proxy) or whose
# command line names our private directory.  Never matched by name.
our_pids() {
  local ino="" p
  [[ -n $NS ]] && ino=$(ns_inode "$NS")
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    if [[ -n $ino ]] && [[ $(stat -L -c %i "/proc/$p/ns/net" 2>/dev/null) == "$ino" ]]; then
      echo "$p"; continue
    fi
    if [[ -n $D ]] && tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "$D/"; then
      echo "$p"
    fi
  done
}

# Use the docker.io package's own 20.10 CLI (/usr/bin/docker) when present:
# a newer CLI sends things a 1.41 API daemon rejects (e.g. --mac-address).
DOCKER_CLI=docker
[[ -x /usr/bin/docker ]] && /usr/bin/docker --version 2>/dev/null | grep -q 'version 20\.10\.' && DOCKER_CLI=/usr/bin/docker
dk() { "$DOCKER_CLI" -H "unix://$D/docker.sock" "$@"; }

stop_daemon() {
  [[ -n $DPID ]] || return 0
  if kill -0 "$DPID" 2>/dev/null; then
    # remove containers first: busybox as PID 1 ignores SIGTERM, so a plain
    # daemon shutdown would wait 10 s per container
    local ids
    ids=$(timeout 30 "$DOCKER_CLI" -H "unix://$D/docker.sock" ps -aq 2>/dev/null)
    [[ -n $ids ]] && timeout 60 "$DOCKER_CLI" -H "unix://$D/docker.sock" rm -f $ids >/dev/null 2>&1
    local cpid=""
    [[ -f $D/exec/containerd/containerd.pid ]] && cpid=$(cat "$D/exec/containerd/containerd.pid" 2>/dev/null)
    kill -TERM "$DPID" 2>/dev/null
    local i
    for ((i = 0; i < 300; i++)); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DPID" 2>/dev/null && kill -KILL "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
    # dockerd stops the containerd it spawned; wait for that too
    if [[ -n $cpid ]]; then
      for ((i = 0; i < 150; i++)); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  wait "$DPID" 2>/dev/null
  DPID=""
}

cleanup_scenario() {
  stop_daemon
  local p i
  # leftovers (should be none): TERM, then KILL, by PID
  for ((i = 0; i < 2; i++)); do
    p=$(our_pids)
    [[ -z $p ]] && break
    echo "  cleanup: terminating leftover pids $(echo $p)" >&2
    kill -TERM $p 2>/dev/null; sleep 2
  done
  p=$(our_pids); [[ -n $p ]] && kill -KILL $p 2>/dev/null && sleep 0.5
  if [[ -n $D && -d $D ]]; then
    # unmount everything under D, deepest first
    local m
    while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(
      awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    rm -rf --one-file-system "$D"
  fi
  if [[ -n $NS ]] && ip netns list | awk '{print $1}' | grep -qxF "$NS"; then
    ip netns del "$NS"
  fi
  NS=""; D=""
}

cleanup_all() {
  local rc=$?
  trap - EXIT INT TERM HUP
  cleanup_scenario
  [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
  # containerd shims put their sockets under /run/containerd/s whatever the
  # state dir; remove that (empty) tree again if this run created it
  if [[ $RUN_CONTAINERD_EXISTED == 0 ]]; then
    rmdir /run/containerd/s /run/containerd 2>/dev/null
  fi
  exit "$rc"
}
trap cleanup_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- steps ----
# Each step logs what it runs (for the ## header) and records ERR on failure.
fail() { ERR="$*"; return 1; }

# docker command, logged as "docker ARGS"
D_() {
  LOG+=("\$ docker $*")
  local out
  if ! out=$(dk "$@" 2>&1); then
    fail "command failed: docker $*"$'\n'"$out"
    return 1
  fi
  echo "$out" >>"$D/commands.out"
}

# command run inside the namespace, logged as such
N_() {
  LOG+=("\$ $*    (inside the namespace)")
  local out
  if ! out=$(ip netns exec "$NS" "$@" 2>&1); then
    fail "command failed in namespace: $*"$'\n'"$out"
    return 1
  fi
}

note() { local l="$*"; INFO+=("${l%"${l##*[! ;]}"}"); } # trailing "; " trimmed

# Docker 20.10 only accepts container names of 2+ characters
# (RestrictedNamePattern ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$); the brief's
# one-letter names get a "1" appended, and the header says so.
renamed() { LOG+=("note: dockerd 20.10 rejects one-character container names (\"Invalid container name (a), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed\"), so: $*"); }

start_daemon() {
  mkdir -p "$D/root" "$D/exec" "$D/cli"
  # the only setting: keep 20.10's libtrust key out of /etc/docker (it has
  # no command-line flag for it any more); nothing network-related
  printf '{"deprecated-key-path": "%s"}\n' "$D/key.json" >"$D/daemon.json"
  local fixed=(--data-root "$D/root" --exec-root "$D/exec" -H "unix://$D/docker.sock"
    --pidfile "$D/pid" --storage-driver vfs --config-file "$D/daemon.json")
  nsenter --net="/var/run/netns/$NS" dockerd "${fixed[@]}" --iptables=true "${FLAGS[@]}" \
    </dev/null >"$D/dockerd.log" 2>&1 &
  DPID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$DPID" 2>/dev/null; then
      fail "dockerd exited during start-up (flags: --iptables=true ${FLAGS[*]})"$'\n'"$(tail -n 30 "$D/dockerd.log")"
      return 1
    fi
    dk version >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "dockerd did not answer within 60 s"$'\n'"$(tail -n 30 "$D/dockerd.log")"
}

import_image() {
  local out
  if ! out=$(dk import --change 'EXPOSE 80/tcp' --change 'EXPOSE 53/udp' \
    --change 'CMD ["/bin/busybox","sleep","3600"]' - tiny:1 <"$WORK/rootfs.tar" 2>&1); then
    fail "image import failed"$'\n'"$out"
  fi
}

# record the addresses and host ports Docker gave every container
record_containers() {
  local ids id
  ids=$(dk ps -aq --no-trunc | tac) || return 0 # oldest first
  for id in $ids; do
    note "$(dk inspect -f '{{slice .Name 1}}: {{range $n, $v := .NetworkSettings.Networks}}{{$n}}={{$v.IPAddress}}{{if $v.GlobalIPv6Address}},{{$v.GlobalIPv6Address}}{{end}} mac={{$v.MacAddress}}; {{end}}' "$id")"
    note "$(dk inspect -f '{{slice .Name 1}} ports: {{range $p, $b := .NetworkSettings.Ports}}{{$p}}->{{if $b}}{{range $b}}{{.HostIp}}:{{.HostPort}} {{end}}{{else}}(not published) {{end}}{{end}}' "$id")"
  done
}

norm_save() { sed -e '/^# /d' -e '/^:/s/\[[0-9]*:[0-9]*\]$/[0:0]/'; }

capture() {
  local f=$OUT/$SCEN
  {
    echo "## scenario $SCEN: Docker $(dockerd --version | sed 's/^Docker version //'), $(iptables --version)"
    echo "## client: $("$DOCKER_CLI" --version) ($DOCKER_CLI), talking to the daemon over its private socket"
    echo "## fresh dockerd in a fresh network namespace (only lo up); iptables-save/ip6tables-save run inside it"
    echo "## daemon flags: --iptables=true${FLAGS[*]:+ ${FLAGS[*]}}"
    echo "##   (always also: private --data-root/--exec-root/-H/--pidfile, --storage-driver vfs, --config-file whose only key is deprecated-key-path=PRIVATE/key.json)"
    echo "## image tiny:1 = static busybox, imported with EXPOSE 80/tcp, EXPOSE 53/udp, CMD [\"/bin/busybox\",\"sleep\",\"3600\"]"
    local l
    for l in "${LOG[@]}"; do echo "## $l"; done
    for l in "${INFO[@]}"; do echo "## => $l"; done
    ip netns exec "$NS" iptables-save | norm_save
    echo "#### ip6tables"
    ip netns exec "$NS" ip6tables-save | norm_save
  } >"$f.rules.tmp" || return 1
  ip netns exec "$NS" nft list ruleset 2>/dev/null |
    sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter packets 0 bytes 0/' >"$f.nft.tmp" || return 1
  mv "$f.rules.tmp" "$f.rules" && mv "$f.nft.tmp" "$f.nft"
}

# ------------------------------------------------------------- scenarios ----
# flags_NAME sets FLAGS; steps_NAME runs the docker commands.
NET() { # NET name subnet bridge [extra args...]
  local name=$1 subnet=$2 br=$3; shift 3
  D_ network create --subnet "$subnet" --gateway "${subnet%.0/24}.1" \
    -o "com.docker.network.bridge.name=$br" "$@" "$name"
}

# NET6 name v4subnet v6subnet bridge [extra args...]: a dual-stack network
NET6() {
  local name=$1 subnet=$2 subnet6=$3 br=$4; shift 4
  D_ network create --ipv6 --subnet "$subnet" --gateway "${subnet%.0/24}.1" \
    --subnet "$subnet6" --gateway "${subnet6%/*}1" \
    -o "com.docker.network.bridge.name=$br" "$@" "$name"
}

# the daemon's IPv6 and its experimental ip6tables, docker0 on fd98:18:17::/64
V6FLAGS=(--experimental --ip6tables --ipv6 --fixed-cidr-v6 fd98:18:17::/64)

steps_s01-fresh() { :; }

steps_s02-one-publish() { D_ run -d --name web -p 8080:80 tiny:1; }

steps_s03-hostip-udp() {
  D_ run -d --name web -p 127.0.0.1:8080:80 tiny:1 &&
    D_ run -d --name dns -p 5353:53/udp tiny:1
}

steps_s04-range() { renamed "r is named r1"; D_ run -d --name r1 -p 8000-8002:9000-9002/tcp tiny:1; }

flags_s05-icc-off-daemon() { FLAGS=(--icc=false); }
steps_s05-icc-off-daemon() { D_ run -d --name web -p 8080:80 tiny:1; }

steps_s06-two-networks() {
  NET front 198.18.1.0/24 br-front &&
    NET back 198.18.2.0/24 br-back &&
    D_ run -d --name web --network front --ip 198.18.1.10 -p 8080:80 tiny:1 &&
    D_ run -d --name api --network back --ip 198.18.2.10 -p 9000:9000 tiny:1
}

steps_s07-internal() {
  NET intra 198.18.3.0/24 br-intra --internal &&
    NET intra-noicc 198.18.4.0/24 br-intranoicc --internal -o com.docker.network.bridge.enable_icc=false &&
    renamed "a is named a1, b is named b1" &&
    D_ run -d --name a1 --network intra --ip 198.18.3.10 tiny:1 &&
    D_ run -d --name b1 --network intra-noicc --ip 198.18.4.10 tiny:1
}

flags_s08-proxy-off() { FLAGS=(--userland-proxy=false); }
steps_s08-proxy-off() {
  D_ run -d --name web -p 8080:80 tiny:1 &&
    NET front 198.18.1.0/24 br-front &&
    D_ run -d --name api --network front --ip 198.18.1.10 -p 9000:9000 tiny:1
}

flags_s09-masq-off() { FLAGS=(--ip-masq=false); }
steps_s09-masq-off() {
  NET nomasq 198.18.5.0/24 br-nomasq -o com.docker.network.bridge.enable_ip_masquerade=false &&
    NET masq 198.18.6.0/24 br-masq &&
    renamed "m is named m1" &&
    D_ run -d --name m1 --network masq --ip 198.18.6.10 -p 8080:80 tiny:1
}

steps_s10-multi-network() {
  NET front 198.18.1.0/24 br-front &&
    NET back 198.18.2.0/24 br-back &&
    D_ run -d --name api --network front --ip 198.18.1.20 -p 8000:8000 tiny:1 &&
    D_ network connect --ip 198.18.2.20 back api &&
    D_ run -d --name db --network back --ip 198.18.2.30 tiny:1
}

steps_s11-host-binding() {
  N_ ip addr add 198.18.0.1/32 dev lo &&
    N_ ip addr add 198.18.0.2/32 dev lo &&
    NET bound 198.18.7.0/24 br-bound -o com.docker.network.bridge.host_binding_ipv4=198.18.0.1 &&
    D_ run -d --name web --network bound --ip 198.18.7.10 -p 8080:80 -p 198.18.0.2:8081:81 tiny:1
}

steps_s12-publish-all() {
  note "namespace /proc/sys/net/ipv4/ip_local_port_range: $(ip netns exec "$NS" cat /proc/sys/net/ipv4/ip_local_port_range | tr '\t' ' ')"
  renamed "p is named p1, q is named q1"
  D_ run -d --name p1 -P tiny:1 &&
    D_ run -d --name q1 -P tiny:1
}

steps_s13-icc-off-network() {
  NET quiet 198.18.8.0/24 br-quiet -o com.docker.network.bridge.enable_icc=false &&
    NET loud 198.18.9.0/24 br-loud &&
    renamed "x is named x1" &&
    D_ run -d --name x1 --network quiet --ip 198.18.8.10 -p 7000:7000/udp tiny:1
}

flags_s14-mac-and-default() { FLAGS=(--bip 198.18.10.1/24); }
steps_s14-mac-and-default() {
  D_ run -d --name c1 --mac-address 02:42:c6:12:0a:05 tiny:1 &&
    D_ run -d --name c2 -p 2222:22 tiny:1
}

steps_s15-many-ports-order() { renamed "w is named w1"; D_ run -d --name w1 -p 9090:90 -p 8080:80/udp -p 7070:70 tiny:1; }

# extra: host-port order and container-port order disagree; tcp+udp on one port
steps_s16-ports-sort-mixed() {
  LOG+=("note: the DNAT/ACCEPT/MASQUERADE order of this scenario is NOT stable between runs: 20.10 sorts bindings with go-connections nat.SortPortMap, whose Less (hostPort_i > hostPort_j || port_i > port_j || same port && tcp) is inconsistent when host-port and container-port order disagree, and its input order comes from Go map iteration (six runs gave four different orders, all rotations of 7070:90 8081:80/tcp 8080:80/udp 9090:70)")
  D_ run -d --name w1 -p 7070:90 -p 9090:70 -p 8080:80/udp -p 8081:80/tcp tiny:1
}

# extra: -P with several exposed tcp ports (image: 80/tcp, 53/udp; plus 70, 90)
steps_s17-publish-all-order() {
  note "namespace /proc/sys/net/ipv4/ip_local_port_range: $(ip netns exec "$NS" cat /proc/sys/net/ipv4/ip_local_port_range | tr '\t' ' ')"
  D_ run -d --name e1 -P --expose 70 --expose 90 tiny:1 &&
    D_ run -d --name e2 -P tiny:1
}

# ip6tables on: the default bridge with fixed-cidr-v6, one publish, one container without
flags_s18-ip6tables-default-bridge() { FLAGS=("${V6FLAGS[@]}"); }
steps_s18-ip6tables-default-bridge() {
  D_ run -d --name web -p 8080:80 tiny:1 &&
    D_ run -d --name c2 tiny:1
}

# dual-stack user networks (one with icc off, one internal), an IPv4-only network
# with a publish, and a container on two dual-stack networks
flags_s19-ip6tables-user-networks() { FLAGS=("${V6FLAGS[@]}"); }
steps_s19-ip6tables-user-networks() {
  NET6 quiet 198.18.11.0/24 fd98:18:11::/64 br-quiet -o com.docker.network.bridge.enable_icc=false &&
    NET6 vault 198.18.12.0/24 fd98:18:12::/64 br-vault --internal &&
    NET front 198.18.13.0/24 br-front &&
    D_ run -d --name web --network quiet --ip 198.18.11.10 --ip6 fd98:18:11::10 -p 8080:80 -p 5353:53/udp tiny:1 &&
    D_ run -d --name db --network vault --ip 198.18.12.10 --ip6 fd98:18:12::10 tiny:1 &&
    D_ network connect --ip 198.18.12.20 --ip6 fd98:18:12::20 vault web &&
    D_ run -d --name api --network front --ip 198.18.13.10 -p 9000:9000 tiny:1
}

# publishes on IPv6 and IPv4 host addresses
flags_s20-ip6tables-host-addresses() { FLAGS=("${V6FLAGS[@]}"); }
steps_s20-ip6tables-host-addresses() {
  N_ ip addr add 198.18.0.1/32 dev lo &&
    N_ ip addr add fd98:18::1/128 dev lo &&
    D_ run -d --name web -p '[::1]:8080:80' -p 127.0.0.1:8081:81 -p '[fd98:18::1]:8082:82' -p 198.18.0.1:8083:83/udp tiny:1 &&
    NET6 front 198.18.14.0/24 fd98:18:14::/64 br-front &&
    D_ run -d --name api --network front --ip 198.18.14.10 --ip6 fd98:18:14::10 -p '[::]:9000:9000' -p 9001:9001 tiny:1
}

# ip6tables on, userland proxy off
flags_s21-ip6tables-proxy-off() { FLAGS=("${V6FLAGS[@]}" --userland-proxy=false); }
steps_s21-ip6tables-proxy-off() {
  D_ run -d --name web -p 8080:80 -p '[::1]:8081:81' tiny:1 &&
    NET6 front 198.18.15.0/24 fd98:18:15::/64 br-front &&
    D_ run -d --name api --network front --ip 198.18.15.10 --ip6 fd98:18:15::10 -p 9000:9000 tiny:1
}

# ip6tables on, but no IPv6 anywhere (no --ipv6)
flags_s22-ip6tables-without-ipv6() { FLAGS=(--experimental --ip6tables); }
steps_s22-ip6tables-without-ipv6() {
  D_ run -d --name web -p 8080:80 tiny:1 &&
    NET front 198.18.16.0/24 br-front &&
    D_ run -d --name api --network front --ip 198.18.16.10 -p 9000:9000 tiny:1
}

# daemon-chosen host ports with ip6tables on: a dual-stack container, an IPv4-only one,
# then a dual-stack one again
flags_s23-ip6tables-publish-all() { FLAGS=("${V6FLAGS[@]}"); }
steps_s23-ip6tables-publish-all() {
  note "namespace /proc/sys/net/ipv4/ip_local_port_range: $(ip netns exec "$NS" cat /proc/sys/net/ipv4/ip_local_port_range | tr '\t' ' ')"
  NET front 198.18.17.0/24 br-front &&
    D_ run -d --name p1 -P tiny:1 &&
    D_ run -d --name q1 --network front --ip 198.18.17.10 -p 90 tiny:1 &&
    D_ run -d --name r1 -p 70 tiny:1
}

# the same without the userland proxy
flags_s24-ip6tables-publish-all-proxy-off() { FLAGS=("${V6FLAGS[@]}" --userland-proxy=false); }
steps_s24-ip6tables-publish-all-proxy-off() { steps_s23-ip6tables-publish-all; }

# ------------------------------------------------------------------ main ----
run_scenario() {
  SCEN=$1
  FLAGS=(); LOG=(); INFO=(); ERR=""
  NS=$NS_PREFIX$SCEN
  rm -f "$OUT/$SCEN.rules" "$OUT/$SCEN.nft" "$OUT/$SCEN.error" "$OUT/$SCEN".*.tmp
  if ip netns list | awk '{print $1}' | grep -qxF "$NS"; then
    # left over from an interrupted run: reuse only if nothing lives in it
    D=""
    [[ -n $(our_pids) ]] && die "namespace $NS exists and has processes in it; not touching it"
    ip netns del "$NS" || die "cannot delete stale namespace $NS"
  fi
  D=$(mktemp -d /tmp/pc2010.XXXXXX)
  local t0=$SECONDS ok=1
  declare -F "flags_$SCEN" >/dev/null && "flags_$SCEN"
  ip netns add "$NS" && ip netns exec "$NS" ip link set lo up || { ERR="cannot create namespace $NS"; ok=0; }
  if ((ok)); then
    export DOCKER_CONFIG=$D/cli
    if start_daemon && import_image && "steps_$SCEN"; then
      record_containers
      capture || { ERR="capture failed"; ok=0; }
    else
      ok=0
    fi
  fi
  if ((ok)); then
    echo "  $SCEN: ok ($((SECONDS - t0)) s) -> $SCEN.rules, $SCEN.nft"
  else
    rm -f "$OUT/$SCEN".*.tmp
    {
      echo "## scenario $SCEN FAILED"
      echo "## daemon flags: --iptables=true${FLAGS[*]:+ ${FLAGS[*]}}"
      local l
      for l in "${LOG[@]}"; do echo "## $l"; done
      echo "$ERR"
    } >"$OUT/$SCEN.error"
    echo "  $SCEN: FAILED ($((SECONDS - t0)) s) -> $SCEN.error: $(head -n 1 <<<"$ERR")"
  fi
  cleanup_scenario
}

main() {
  [[ $(id -u) == 0 ]] || die "must run as root"
  local c
  for c in dockerd docker iptables-save ip6tables-save nft nsenter ip; do
    command -v "$c" >/dev/null || die "missing $c"
  done
  [[ -x /bin/busybox ]] || die "missing /bin/busybox (busybox-static)"
  local want=("$@")
  ((${#want[@]})) || want=("${ALL_SCENARIOS[@]}")
  for c in "${want[@]}"; do
    declare -F "steps_$c" >/dev/null || die "unknown scenario $c (known: ${ALL_SCENARIOS[*]})"
  done
  mkdir -p "$OUT"
  [[ -e /run/containerd ]] || RUN_CONTAINERD_EXISTED=0
  WORK=$(mktemp -d /tmp/pc2010-work.XXXXXX)
  mkdir -p "$WORK/rootfs/bin" && cp /bin/busybox "$WORK/rootfs/bin/" &&
    tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" . || die "cannot build image rootfs"
  echo "capturing ${#want[@]} scenario(s) with $(dockerd --version) into ${OUT#"$REPO"/}"
  for c in "${want[@]}"; do run_scenario "$c"; done
}

main "$@"
