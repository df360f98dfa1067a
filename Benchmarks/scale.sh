#!/usr/bin/env bash
# Compile and apply at scale: generates hosts with 100, 1,000 and 10,000 containers (two
# published ports each, a flow and an egress rule), then prints, from this one run:
#   - compile+render time and peak memory per size (release build), and the time per container
#     as a ratio to the 100-container baseline (1.0 = linear);
#   - the time to apply the docker-20.10 ruleset with iptables-restore and with libnftables,
#     in a network namespace this script creates and deletes, as a ratio of the two.
# Usage: sudo bash Benchmarks/scale.sh [SIZES...]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-100 1000 10000}")
read -r -a sizes <<<"${sizes[*]}"
echo "building the release binary (a few minutes the first time)..." >&2
swift build -c release --product portcullis >/dev/null
binary=.build/release/portcullis
work=$(mktemp -d)
namespace="pc-bench-$$"
cleanup() { ip netns delete "$namespace" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

generate() { # N FILE
    python3 - "$1" "$2" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
lines = ["network bridge {", "    bridge docker0", "    subnet 172.16.0.0/12", "}"]
for i in range(n):
    a = i + 2
    lines += [f"container c{i} {{", f"    attach bridge 172.16.{a // 256}.{a % 256}",
              f"    publish {10000 + 2 * i} -> 80/tcp", f"    publish {10001 + 2 * i} -> 443/tcp", "}"]
lines += ["allow c0 -> c1 port 5432/tcp", "egress c1 -> any port 443/tcp"]
open(path, "w").write("\n".join(lines) + "\n")
PY
}

seconds() { python3 -c "import sys; print(f'{float(sys.argv[1]):.3f}')" "$1"; }

printf '%-10s %12s %12s %14s\n' containers "compile (s)" "peak (MB)" "per container"
baseline=""
for n in "${sizes[@]}"; do
    echo "compiling a host with $n containers..." >&2
    generate "$n" "$work/p$n.policy"
    /usr/bin/time -f "%e %M" -o "$work/time" "$binary" compile "$work/p$n.policy" -o "$work/p$n.iptables"
    read -r elapsed kilobytes <"$work/time"
    per=$(python3 -c "import sys; print(float(sys.argv[1]) / int(sys.argv[2]))" "$elapsed" "$n")
    [ -n "$baseline" ] || baseline=$per
    ratio=$(python3 -c "import sys; print('%.2fx' % (float(sys.argv[1]) / max(float(sys.argv[2]), 1e-9)))" "$per" "$baseline")
    printf '%-10s %12s %12s %14s\n' "$n" "$elapsed" "$((kilobytes / 1024))" "$ratio"
done

if [ "$(id -u)" -eq 0 ]; then
    largest=${sizes[-1]}
    "$binary" compile "$work/p$largest.policy" --backend nftables -o "$work/p$largest.nft"
    ip netns add "$namespace"
    start=$(date +%s.%N)
    ip netns exec "$namespace" iptables-restore <"$work/p$largest.iptables"
    iptables=$(python3 -c "import time; print(time.time() - $start)")
    ip netns exec "$namespace" iptables -F; ip netns exec "$namespace" nft flush ruleset
    start=$(date +%s.%N)
    ip netns exec "$namespace" "$binary" apply "$work/p$largest.policy" --backend nftables --state-dir "$work/state" >/dev/null
    nft=$(python3 -c "import time; print(time.time() - $start)")
    printf '\napply of %s containers (%s rules): iptables-restore %ss, portcullis apply via libnftables %ss (ratio %s)\n' \
        "$largest" "$(grep -c '^-A' "$work/p$largest.iptables")" "$(seconds "$iptables")" "$(seconds "$nft")" \
        "$(python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$nft" "$iptables")"
else
    echo "(not root: apply timings skipped)"
fi
