#!/usr/bin/env bash
# Portcullis' benchmark (docs/performance.md says what each figure means). One run prints:
#   1. compile+render time and peak memory per size (100, 1,000, 10,000, 50,000 containers)
#      for docker-20.10 (iptables, nftables) and native (nftables), against the time the
#      kernel takes to load the result in a fresh network namespace (nft -f, iptables-restore,
#      and `portcullis apply` through libnftables);
#   2. the apply time of docker-20.10 against native, at 10,000 containers;
#   3. an incremental apply (one container added) against a full apply, native, 10,000;
#   4. new TCP connections per second to the last of 10,000 published ports, through the
#      kernel in namespaces, for docker-20.10 and native against an empty ruleset;
#   5. compile time and memory against aerleon 1.18 and ferm for 10,000 containers;
#   6. import, audit and explain of the 10,000-container host's rules against compiling it;
#   7. the checker on 200, 400 and 800 networks whose subnets all overlap;
#   8. instructions executed by compile at 1,000 and 10,000 containers (callgrind).
# Figures are ratios against baselines measured in the same run, then checked against the
# project's targets.
#
# Usage: sudo bash Benchmarks/run.sh [--quick]
#   --quick   sizes 100 and 1,000 only; parts 2 to 5 at 1,000 containers (1,000 published
#             ports for part 4) with one short connection run: a smoke test, not a measurement.
# Parts 1 (kernel columns) to 4 need root; without it they are skipped. Every namespace is
# this script's own (pc-bench-PID-*), and is deleted on exit; nothing changes in the
# machine's own namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

quick=false
for argument in "$@"; do
    case $argument in
    --quick) quick=true ;;
    -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $argument (usage: Benchmarks/run.sh [--quick])" >&2; exit 2 ;;
    esac
done
if $quick; then
    sizes=(100 1000); focus=1000; traffic=500; peers=1000; conn_seconds=1; rounds=1
else
    sizes=(100 1000 10000 50000); focus=10000; traffic=5000; peers=10000; conn_seconds=5; rounds=3
fi
apply_timeout=${PC_BENCH_APPLY_TIMEOUT:-150} # seconds; a slower kernel load is reported as ">N"

root=false
[ "$(id -u)" -eq 0 ] && root=true
scratch=$repo/.build-bench
work=$(mktemp -d /tmp/pc-bench.XXXXXX)
prefix="pc-bench-$$"
pids=()
cleanup() {
    local pid namespace
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    if $root; then
        for namespace in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do
            ip netns delete "$namespace" 2>/dev/null || true
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
py() { python3 "$repo/Benchmarks/measure.py" "$@"; }
generate() { python3 "$repo/Benchmarks/generate.py" "$@"; }
mib() { echo $((($1 + 1023) / 1024)); }

# --- build -------------------------------------------------------------------------------
say "building portcullis (release, --scratch-path .build-bench)..."
swift build -c release --scratch-path "$scratch" --product portcullis >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }
portcullis=$scratch/release/portcullis
gcc -O2 -Wall -o "$scratch/connrate" "$repo/Benchmarks/connrate.c"
connrate=$scratch/connrate

namespace_count=0
new_namespace() { # sets $namespace to the name of a new, empty namespace
    namespace_count=$((namespace_count + 1))
    namespace="$prefix-$namespace_count"
    ip netns add "$namespace"
}
drop_namespace() { ip netns delete "$1" 2>/dev/null || true; }

# measure OUT CMD... -> "SECONDS KIB" (or "timeout KIB"), fails only if CMD fails
measure() {
    local out=$1 result status=0
    shift
    result=$(py run "$out" timeout "$apply_timeout" "$@") || status=$?
    if [ "$status" -eq 124 ]; then
        echo "timeout ${result#* }"
    elif [ "$status" -ne 0 ]; then
        say "failed ($status): $*"; sed 's/^/    /' "$out" >&2; return 1
    else
        echo "$result"
    fi
}

# compile_median POLICY LAYOUT BACKEND OUT REPEATS -> "MEDIAN_SECONDS MAX_KIB"
compile_median() {
    local policy=$1 layout=$2 backend=$3 out=$4 repeats=$5 times=() peak=0 seconds kib
    for _ in $(seq "$repeats"); do
        r=$(py run "$work/compile.log" "$portcullis" compile "$policy" --layout "$layout" \
            --backend "$backend" -o "$out") && read -r seconds kib <<<"$r" || { cat "$work/compile.log" >&2; return 1; }
        times+=("$seconds")
        [ "$kib" -gt "$peak" ] && peak=$kib
    done
    echo "$(py median "${times[@]}") $peak"
}

fmt() { # seconds, or ">N s" for a timeout
    case $1 in
    timeout) echo ">${apply_timeout}s" ;;
    -) echo "-" ;;
    *) python3 -c "import sys; v=float(sys.argv[1]); print(f'{v*1000:.0f} ms' if v < 1 else f'{v:.2f} s')" "$1" ;;
    esac
}
ratio() { py ratio "$1" "$2"; }
pct() { py pct "$1" "$2"; }

declare -A compile_s compile_kib kernel_s apply_s
printf '\nPortcullis benchmark: %s, %s cores, %s, %s\n' "$(git -C "$repo" rev-parse --short HEAD)" "$(nproc)" \
    "$(uname -r)" "$(nft --version 2>/dev/null | head -1)"
$quick && printf '(--quick: a smoke test, the figures are not measurements)\n'

# --- 1. compile and kernel load per size --------------------------------------------------
printf '\n1. Compile+render, peak memory, and the kernel loading the result in a fresh namespace\n'
printf '   (per container: time per container as a ratio to the 100-container one, 1.00x = linear)\n\n'
printf '%-8s %-22s %10s %9s %8s %12s %14s %12s\n' containers "layout/backend" compile "peak MiB" "per ctr" \
    "kernel load" "compile/load" "pc apply"
for n in "${sizes[@]}"; do
    generate host "$n" "$work/p$n.policy"
    if [ "$n" -le 1000 ]; then repeats=5; elif [ "$n" -le 10000 ]; then repeats=3; else repeats=1; fi
    for variant in docker-20.10/iptables docker-20.10/nftables native/nftables; do
        layout=${variant%/*} backend=${variant#*/}
        key="$n/$variant"
        ext=$([ "$backend" = iptables ] && echo ipt || echo nft)
        say "[1] $n containers, $variant: compiling ($repeats runs)..."
        r=$(compile_median "$work/p$n.policy" "$layout" "$backend" "$work/p$n.$layout.$ext" "$repeats"); read -r seconds kib <<<"$r"
        compile_s[$key]=$seconds compile_kib[$key]=$kib
        per_ctr=$(python3 -c "import sys; print(float(sys.argv[1]) / int(sys.argv[2]))" "$seconds" "$n")
        [ "$n" = "${sizes[0]}" ] && eval "base_per_ctr_${layout//[.-]/_}_$backend=$per_ctr"
        base_var="base_per_ctr_${layout//[.-]/_}_$backend"
        kernel_s[$key]=- apply_s[$key]=-
        if $root; then
            new_namespace
            if [ "$backend" = iptables ]; then
                say "[1] $n containers, $variant: iptables-restore in a fresh namespace..."
                r=$(measure "$work/load.log" ip netns exec "$namespace" iptables-restore "$work/p$n.$layout.$ext"); read -r kernel _ <<<"$r"
            else
                say "[1] $n containers, $variant: nft -f in a fresh namespace..."
                r=$(measure "$work/load.log" ip netns exec "$namespace" nft -f "$work/p$n.$layout.$ext"); read -r kernel _ <<<"$r"
            fi
            drop_namespace "$namespace"
            kernel_s[$key]=$kernel
            if [ "$backend" = nftables ] && [ "$kernel" != timeout ]; then
                new_namespace
                say "[1] $n containers, $variant: portcullis apply in a fresh namespace..."
                r=$(measure "$work/apply.log" ip netns exec "$namespace" "$portcullis" apply \
                    "$work/p$n.policy" --layout "$layout" --backend "$backend" --state-dir "$work/state-$namespace"); read -r applied _ <<<"$r"
                drop_namespace "$namespace"
                apply_s[$key]=$applied
            fi
        fi
        printf '%-8s %-22s %10s %9s %8s %12s %14s %12s\n' "$n" "$variant" "$(fmt "$seconds")" "$(mib "$kib")" \
            "$(ratio "$per_ctr" "${!base_var}")" "$(fmt "${kernel_s[$key]}")" \
            "$(pct "$seconds" "${kernel_s[$key]}")" "$(fmt "${apply_s[$key]}")"
    done
done
printf '\n   kernel load: iptables-restore for the iptables backend, nft -f (libnftables) for nftables;\n'
printf '   compile/load: compile+render time as a share of it; pc apply: `portcullis apply` (compile,\n'
printf '   one libnftables transaction, listing and recording the generation) in a fresh namespace.\n'

# --- 2. docker-20.10 against native, apply ------------------------------------------------
printf '\n2. Apply at %s containers, docker-20.10 (nftables backend) against native\n\n' "$focus"
d="$focus/docker-20.10/nftables" v="$focus/native/nftables"
if $root; then
    printf '   %-28s %12s %12s %18s\n' "" docker-20.10 native "native speed-up"
    printf '   %-28s %12s %12s %18s\n' "nft -f in a fresh namespace" "$(fmt "${kernel_s[$d]}")" "$(fmt "${kernel_s[$v]}")" \
        "$(ratio "${kernel_s[$d]}" "${kernel_s[$v]}")"
    printf '   %-28s %12s %12s %18s\n' "portcullis apply" "$(fmt "${apply_s[$d]}")" "$(fmt "${apply_s[$v]}")" \
        "$(ratio "${apply_s[$d]}" "${apply_s[$v]}")"
else
    printf '   (not root: skipped)\n'
fi

# --- 3. incremental against full apply ---------------------------------------------------
printf '\n3. One container added to the %s-container native host: incremental against full apply (median of 3)\n\n' "$focus"
incremental=- full=- incremental_kernel= full_kernel=
if $root; then
    generate host "$focus" "$work/p$focus+1.policy" --extra 1
    incremental_runs=() full_runs=()
    new_namespace
    incremental_namespace=$namespace
    for round in 1 2 3; do
        # Back to the focus-size host (itself an element change, with --prune), then one more container.
        say "[3] round $round: applying $focus containers..."
        measure "$work/apply.log" ip netns exec "$incremental_namespace" "$portcullis" apply "$work/p$focus.policy" \
            --layout native --backend nftables --state-dir "$work/state-incremental" --prune >/dev/null
        say "[3] round $round: applying $focus + 1 containers over it..."
        r=$(measure "$work/incremental.log" ip netns exec "$incremental_namespace" "$portcullis" apply \
            "$work/p$focus+1.policy" --layout native --backend nftables --state-dir "$work/state-incremental"); read -r seconds _ <<<"$r"
        incremental_runs+=("$seconds")
        new_namespace
        say "[3] round $round: applying $focus + 1 containers in a fresh namespace..."
        r=$(measure "$work/full.log" ip netns exec "$namespace" "$portcullis" apply "$work/p$focus+1.policy" \
            --layout native --backend nftables --state-dir "$work/state-full-$round"); read -r seconds _ <<<"$r"
        full_runs+=("$seconds")
        drop_namespace "$namespace"
    done
    drop_namespace "$incremental_namespace"
    incremental=$(py median "${incremental_runs[@]}") full=$(py median "${full_runs[@]}")
    kernel_ms() { grep -o '[0-9.]* ms in the kernel' "$1" | head -1 | cut -d' ' -f1 || true; }
    incremental_kernel=$(kernel_ms "$work/incremental.log") full_kernel=$(kernel_ms "$work/full.log")
    printf '   %-40s %12s %22s\n' "" "apply command" "its kernel transaction"
    printf '   %-40s %12s %22s\n' "apply over the $focus-container ruleset" "$(fmt "$incremental")" \
        "${incremental_kernel:-?} ms"
    printf '   %-40s %12s %22s\n' "apply into a fresh namespace" "$(fmt "$full")" "${full_kernel:-?} ms"
    printf '   %-40s %12s %22s\n' "incremental speed-up" "$(ratio "$full" "$incremental")" \
        "$(ratio "${full_kernel:--}" "${incremental_kernel:--}")"
    printf '\n   apply said, over the %s-container ruleset:\n     %s\n' "$focus" "$(grep -m1 . "$work/incremental.log" || true)"
    printf '   and into a fresh namespace:\n     %s\n' "$(grep -m1 . "$work/full.log" || true)"
else
    printf '   (not root: skipped)\n'
fi

# --- 4. new connections per second ------------------------------------------------------
ports=$((2 * traffic))
printf '\n4. New TCP connections per second to the last of %s published ports (%s containers),\n' "$ports" "$traffic"
printf '   %s runs of %s s each, median; outside -> host -> container, in namespaces\n\n' "$rounds" "$conn_seconds"
declare -A rate
if $root; then
    generate host "$traffic" "$work/traffic.policy"
    r=$(generate last "$traffic"); read -r host_address host_port container_address container_port <<<"$r"
    new_namespace; host=$namespace; new_namespace; outside=$namespace; new_namespace; container=$namespace
    ip -n "$host" link set lo up
    ip netns exec "$host" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$host" link add eth0 type veth peer name eth0 netns "$outside"
    ip -n "$host" addr add 198.19.0.1/24 dev eth0
    ip -n "$host" link set eth0 up
    ip -n "$outside" addr add 198.19.0.2/24 dev eth0
    ip -n "$outside" link set eth0 up
    ip -n "$outside" route add 198.18.0.0/16 via 198.19.0.1
    ip netns exec "$outside" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
    ip -n "$host" link add docker0 type bridge
    ip -n "$host" addr add 198.18.0.1/16 dev docker0
    ip -n "$host" link set docker0 up
    ip -n "$host" link add vh0 type veth peer name eth0 netns "$container"
    ip -n "$host" link set vh0 master docker0 up
    ip -n "$container" addr add "$container_address/16" dev eth0
    ip -n "$container" link set eth0 up
    ip -n "$container" link set lo up
    ip -n "$container" route add default via 198.18.0.1
    ip netns exec "$container" "$connrate" serve "$container_port" >"$work/server.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do grep -q ready "$work/server.log" && break; sleep 0.1; done
    grep -q ready "$work/server.log" || { say "the server did not start"; cat "$work/server.log" >&2; exit 1; }

    connections() { # ADDRESS PORT SECONDS -> connections per second
        local count elapsed failures
        r=$(ip netns exec "$outside" "$connrate" connect "$1" "$2" "$3"); read -r count elapsed failures <<<"$r"
        python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):.0f}')" "$count" "$elapsed"
    }
    declare -A samples
    for round in $(seq "$rounds"); do
        for setup in empty one-dnat docker-20.10 native; do
            if [ "$setup" = empty ]; then
                target=("$container_address" "$container_port")
            elif [ "$setup" = one-dnat ]; then
                ip netns exec "$host" nft -f - <<EOF
table ip pc-bench {
    chain prerouting { type nat hook prerouting priority -100; ip daddr $host_address tcp dport $host_port dnat to $container_address:$container_port; }
    chain forward { type filter hook forward priority 0; policy drop; ct state established,related accept; ct status dnat accept; }
}
EOF
                target=("$host_address" "$host_port")
            else
                say "[4] round $round: applying $setup ($ports published ports) in the host namespace..."
                ip netns exec "$host" "$portcullis" apply "$work/traffic.policy" --layout "$setup" --backend nftables \
                    --state-dir "$work/state-traffic-$setup-$round" >/dev/null
                target=("$host_address" "$host_port")
            fi
            connections "${target[@]}" 0.3 >/dev/null # warm up (ARP, caches)
            say "[4] round $round: $setup, ${target[0]}:${target[1]} for $conn_seconds s..."
            samples[$setup]="${samples[$setup]:-} $(connections "${target[@]}" "$conn_seconds")"
            ip netns exec "$host" nft flush ruleset
        done
    done
    for setup in empty one-dnat docker-20.10 native; do
        read -r -a values <<<"${samples[$setup]}"
        rate[$setup]=$(py median "${values[@]}")
    done
    printf '   %-36s %12s %14s\n' "" "conn/s" "of empty"
    printf '   %-36s %12.0f %14s\n' "empty ruleset (straight to container)" "${rate[empty]}" "100%"
    printf '   %-36s %12.0f %14s\n' "one DNAT rule (conntrack+NAT floor)" "${rate[one-dnat]}" \
        "$(pct "${rate[one-dnat]}" "${rate[empty]}")"
    for setup in docker-20.10 native; do
        printf '   %-36s %12.0f %14s\n' "$setup (host:$host_port)" "${rate[$setup]}" \
            "$(pct "${rate[$setup]}" "${rate[empty]}")"
    done
    kill -KILL "${pids[-1]}" 2>/dev/null || true
    wait "${pids[-1]}" 2>/dev/null || true
    drop_namespace "$container"; drop_namespace "$outside"; drop_namespace "$host"
else
    printf '   (not root: skipped)\n'
fi

# --- 5. peers -----------------------------------------------------------------------------
printf '\n5. Against aerleon 1.18 and ferm: %s containers, one inbound and one egress rule each\n\n' "$peers"
generate peers "$peers" "$work/peers"
peer_repeats=$([ "$peers" -le 1000 ] && echo 5 || echo 3)
say "[5] portcullis..."
r=$(compile_median "$work/peers/portcullis.policy" docker-20.10 iptables "$work/peers/ours.ipt" "$peer_repeats"); read -r ours_ipt_s ours_ipt_kib <<<"$r"
r=$(compile_median "$work/peers/portcullis.policy" native nftables "$work/peers/ours.nft" "$peer_repeats"); read -r ours_nft_s ours_nft_kib <<<"$r"
venv=$scratch/aerleon-venv
if [ ! -x "$venv/bin/aclgen" ]; then
    say "[5] installing aerleon 1.18 into $venv..."
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q 'aerleon==1.18.*'; } >"$work/aerleon-install.log" 2>&1 ||
        say "aerleon could not be installed: $(tail -1 "$work/aerleon-install.log")"
fi
if ! command -v ferm >/dev/null && $root; then
    say "[5] installing ferm..."
    apt-get install -y -qq ferm >"$work/ferm-install.log" 2>&1 || say "ferm could not be installed"
fi
peer_row() { # NAME SECONDS KIB OUR_SECONDS OUR_KIB
    printf '   %-34s %10s %9s %16s %16s\n' "$1" "$(fmt "$2")" "$(mib "$3")" "$(ratio "$2" "$4")" "$(ratio "$3" "$5")"
}
printf '   %-34s %10s %9s %16s %16s\n' "" time "peak MiB" "peer/ours time" "peer/ours mem"
printf '   %-34s %10s %9s\n' "portcullis docker-20.10/iptables" "$(fmt "$ours_ipt_s")" "$(mib "$ours_ipt_kib")"
printf '   %-34s %10s %9s\n' "portcullis native/nftables" "$(fmt "$ours_nft_s")" "$(mib "$ours_nft_kib")"
aerleon_nft_s=- aerleon_ipt_s=- ferm_s=-
if [ -x "$venv/bin/aclgen" ]; then
    for target in nft ipt; do
        say "[5] aerleon ($target)..."
        mkdir -p "$work/peers/aerleon/out-$target"
        r=$(py run "$work/aerleon-$target.log" "$venv/bin/aclgen" --max_renderers 1 \
            --policy_file "$work/peers/aerleon/pol-$target/containers.pol" --base_directory "$work/peers/aerleon/pol-$target" --definitions_directory "$work/peers/aerleon/def" \
            --output_directory "$work/peers/aerleon/out-$target") && read -r seconds kib <<<"$r" || { cat "$work/aerleon-$target.log" >&2; exit 1; }
        [ -n "$(ls "$work/peers/aerleon/out-$target")" ] || { say "aerleon wrote nothing"; cat "$work/aerleon-$target.log" >&2; exit 1; }
        if [ "$target" = nft ]; then
            aerleon_nft_s=$seconds
            peer_row "aerleon nftables (vs native)" "$seconds" "$kib" "$ours_nft_s" "$ours_nft_kib"
        else
            aerleon_ipt_s=$seconds
            peer_row "aerleon iptables (vs docker-20.10)" "$seconds" "$kib" "$ours_ipt_s" "$ours_ipt_kib"
        fi
    done
else
    printf '   aerleon: unavailable (not installed and could not be installed)\n'
fi
if command -v ferm >/dev/null; then
    say "[5] ferm..."
    r=$(py run "$work/ferm.out" ferm --remote "$work/peers/ferm.conf") && read -r ferm_s kib <<<"$r" || { cat "$work/ferm.out" >&2; exit 1; }
    grep -q DNAT "$work/ferm.out" || { say "ferm wrote no rules"; cat "$work/ferm.out" >&2; exit 1; }
    peer_row "ferm --remote (vs docker-20.10)" "$ferm_s" "$kib" "$ours_ipt_s" "$ours_ipt_kib"
else
    printf '   ferm: unavailable\n'
fi

# --- 6. reading a host: import, audit and explain against compiling it ------------------
printf '\n6. Reading the %s-container host back, against compiling it (the same run, median of 3)\n\n' "$focus"
printf '   %-44s %10s %9s %14s %14s\n' "" time "peak MiB" "of compile" "mem of comp."
generate host "$focus" "$work/read.policy"
say "[6] compiling the host for both readers..."
r=$(compile_median "$work/read.policy" docker-20.10 iptables "$work/read.ipt" 3); read -r read_ipt_s read_ipt_kib <<<"$r"
r=$(compile_median "$work/read.policy" native nftables-json "$work/read.json" 3); read -r read_nft_s read_nft_kib <<<"$r"
declare -A read_s read_kib
read_row() { # KEY LABEL COMPILE_S COMPILE_KIB CMD...
    local key=$1 label=$2 base_s=$3 base_kib=$4 times=() peak=0 seconds kib
    shift 4
    say "[6] $label..."
    for _ in 1 2 3; do
        r=$(py run "$work/read.log" "$@") || true # audit and explain exit 1 on findings
        read -r seconds kib <<<"$r"
        times+=("$seconds")
        [ "$kib" -gt "$peak" ] && peak=$kib
    done
    read_s[$key]=$(py median "${times[@]}") read_kib[$key]=$peak
    printf '   %-44s %10s %9s %14s %14s\n' "$label" "$(fmt "${read_s[$key]}")" "$(mib "$peak")" \
        "$(ratio "${read_s[$key]}" "$base_s")" "$(ratio "$peak" "$base_kib")"
}
printf '   %-44s %10s %9s\n' "compile docker-20.10/iptables" "$(fmt "$read_ipt_s")" "$(mib "$read_ipt_kib")"
read_row import-ipt "import (iptables-save)" "$read_ipt_s" "$read_ipt_kib" "$portcullis" import "$work/read.ipt" -o "$work/imported.policy"
read_row audit-ipt "audit --ruleset (iptables-save)" "$read_ipt_s" "$read_ipt_kib" "$portcullis" audit --ruleset "$work/read.ipt"
read_row explain-ipt "explain --ruleset (iptables-save)" "$read_ipt_s" "$read_ipt_kib" "$portcullis" explain --ruleset "$work/read.ipt" \
    --from outside:198.19.1.9 --to "$(generate last "$focus" | cut -d' ' -f1)" --port "$(generate last "$focus" | cut -d' ' -f2)/tcp"
printf '   %-44s %10s %9s\n' "compile native/nftables (JSON)" "$(fmt "$read_nft_s")" "$(mib "$read_nft_kib")"
read_row import-nft "import (nft JSON)" "$read_nft_s" "$read_nft_kib" "$portcullis" import "$work/read.json" -o "$work/imported-native.policy"
read_row audit-nft "audit --ruleset (nft JSON)" "$read_nft_s" "$read_nft_kib" "$portcullis" audit --ruleset "$work/read.json"
read_row explain-nft "explain --ruleset (nft JSON)" "$read_nft_s" "$read_nft_kib" "$portcullis" explain --ruleset "$work/read.json" \
    --from outside:198.19.1.9 --to "$(generate last "$focus" | cut -d' ' -f1)" --port "$(generate last "$focus" | cut -d' ' -f2)/tcp"

# --- 7. the checker on overlapping networks -----------------------------------------------
printf '\n7. The checker on N networks whose subnets all overlap (portcullis check, median of 3)\n\n'
printf '   %-10s %10s %9s %16s\n' networks time "peak MiB" "lines reported"
declare -A overlap_s
for n in 200 400 800; do
    generate overlaps "$n" "$work/o$n.policy"
    times=()
    for _ in 1 2 3; do
        r=$(py run "$work/overlaps.log" "$portcullis" check "$work/o$n.policy") || true # the policy is refused
        read -r seconds kib <<<"$r"
        times+=("$seconds")
    done
    overlap_s[$n]=$(py median "${times[@]}")
    printf '   %-10s %10s %9s %16s\n' "$n" "$(fmt "${overlap_s[$n]}")" "$(mib "$kib")" "$(wc -l <"$work/overlaps.log")"
done

# --- 8. instruction counts ------------------------------------------------------------------
printf '\n8. Instructions executed by compile (valgrind --tool=callgrind; repeatable on a noisy machine)\n\n'
declare -A instructions
if command -v valgrind >/dev/null; then
    # valgrind's reader gives up on the Swift toolchain's debug information: count a copy without it.
    objcopy --strip-debug "$portcullis" "$work/portcullis-nodebug"
    printf '   %-10s %-24s %18s %12s\n' containers "layout/backend" instructions "per ctr"
    for n in $(printf "%s\n" 1000 "$focus" | sort -nu); do
        [ -f "$work/p$n.policy" ] || generate host "$n" "$work/p$n.policy"
        for variant in docker-20.10/iptables native/nftables; do
            layout=${variant%/*} backend=${variant#*/}
            say "[8] callgrind: $n containers, $variant..."
            valgrind --tool=callgrind --callgrind-out-file=/dev/null "$work/portcullis-nodebug" compile "$work/p$n.policy" \
                --layout "$layout" --backend "$backend" -o /dev/null 2>"$work/callgrind.log" || { cat "$work/callgrind.log" >&2; exit 1; }
            count=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/callgrind.log")
            instructions[$n/$variant]=$count
            printf '   %-10s %-24s %18s %12s\n' "$n" "$variant" "$(printf "%'d" "$count")" "$(printf "%'d" $((count / n)))"
        done
    done
else
    printf '   valgrind: unavailable\n'
fi

# --- targets ------------------------------------------------------------------------------
printf '\nTargets (at %s containers; %s published ports for the connection rate)\n\n' "$focus" "$ports"
verdict() { # NAME MET(0/1) DETAIL
    printf '   %-7s %-48s %s\n' "$([ "$2" = 0 ] && echo met || echo MISSED)" "$1" "$3"
}
check() { py le "$1" "$2" >/dev/null 2>&1 && echo 0 || echo 1; }
for variant in docker-20.10/nftables native/nftables; do
    key="$focus/$variant"
    if [ "${kernel_s[$key]}" = - ]; then continue; fi
    limit=$(python3 -c "import sys; print(0.1 * float(sys.argv[1]) if sys.argv[1] != 'timeout' else 1e9)" "${kernel_s[$key]}")
    verdict "compile+render <= 10% of nft -f, $variant" "$(check "${compile_s[$key]}" "$limit")" \
        "$(fmt "${compile_s[$key]}") = $(pct "${compile_s[$key]}" "${kernel_s[$key]}") of $(fmt "${kernel_s[$key]}")"
done
for variant in docker-20.10/iptables native/nftables; do
    key="$focus/$variant"
    verdict "peak memory <= 50 MiB, $variant" "$(check "${compile_kib[$key]}" 51200)" "$(mib "${compile_kib[$key]}") MiB"
done
ratio_of() { python3 -c "import sys; print(float(sys.argv[1]) / float(sys.argv[2]))" "$1" "$2"; }
last=${sizes[-1]}
for variant in docker-20.10/iptables native/nftables; do
    per_first=$(ratio_of "${compile_s[1000/$variant]}" 1000) per_last=$(ratio_of "${compile_s[$last/$variant]}" "$last")
    verdict "per-container compile flat 1000 -> $last (<= 1.25x), $variant" "$(check "$(ratio_of "$per_last" "$per_first")" 1.25)" \
        "$(ratio "$per_last" "$per_first") of the 1000-container cost per container"
done
for key in import-ipt audit-ipt explain-ipt import-nft audit-nft explain-nft; do
    base_s=$([ "${key#*-}" = ipt ] && echo "$read_ipt_s" || echo "$read_nft_s")
    base_kib=$([ "${key#*-}" = ipt ] && echo "$read_ipt_kib" || echo "$read_nft_kib")
    verdict "${key%-*} ($([ "${key#*-}" = ipt ] && echo iptables-save || echo nft JSON)) within 2x of compile, time and memory" \
        "$([ "$(check "$(ratio_of "${read_s[$key]}" "$base_s")" 2)" = 0 ] && check "$(ratio_of "${read_kib[$key]}" "$base_kib")" 2 || echo 1)" \
        "$(ratio "${read_s[$key]}" "$base_s") the time, $(ratio "${read_kib[$key]}" "$base_kib") the memory"
done
verdict "checker: 800 overlapping networks under a second" "$(check "${overlap_s[800]}" 1)" "$(fmt "${overlap_s[800]}")"
if [ "$aerleon_nft_s" != - ]; then
    verdict ">= 100x faster than aerleon (nftables)" "$(check 100 "$(python3 -c "import sys; print(float(sys.argv[1]) / float(sys.argv[2]))" "$aerleon_nft_s" "$ours_nft_s")")" \
        "$(ratio "$aerleon_nft_s" "$ours_nft_s")"
    verdict ">= 100x faster than aerleon (iptables)" "$(check 100 "$(python3 -c "import sys; print(float(sys.argv[1]) / float(sys.argv[2]))" "$aerleon_ipt_s" "$ours_ipt_s")")" \
        "$(ratio "$aerleon_ipt_s" "$ours_ipt_s")"
fi
if [ "$ferm_s" != - ]; then
    verdict ">= 10x faster than ferm" "$(check 10 "$(python3 -c "import sys; print(float(sys.argv[1]) / float(sys.argv[2]))" "$ferm_s" "$ours_ipt_s")")" \
        "$(ratio "$ferm_s" "$ours_ipt_s")"
fi
if $root; then
    d="$focus/docker-20.10/nftables" v="$focus/native/nftables"
    speedup() { python3 -c "import sys; a, b = sys.argv[1:]; print(0 if 'timeout' in (a, b) or '-' in (a, b) else float(a) / float(b))" "$1" "$2"; }
    verdict "native apply >= 3x faster than docker-20.10" "$(check 3 "$(speedup "${apply_s[$d]}" "${apply_s[$v]}")")" \
        "portcullis apply $(ratio "${apply_s[$d]}" "${apply_s[$v]}"), nft -f $(ratio "${kernel_s[$d]}" "${kernel_s[$v]}")"
    verdict "incremental apply >= 5x faster than full" "$(check 5 "$(speedup "$full" "$incremental")")" \
        "apply command $(ratio "$full" "$incremental"), kernel transaction $(ratio "${full_kernel:--}" "${incremental_kernel:--}")"
    for setup in native docker-20.10; do
        verdict "conn/s >= 90% of empty, $setup" "$(check 0.9 "$(speedup "${rate[$setup]}" "${rate[empty]}")")" \
            "$(pct "${rate[$setup]}" "${rate[empty]}")"
    done
fi
