#!/usr/bin/env bash
# How fast `portcullis watch` gets a new container's rules into the kernel, and whether its
# memory stays flat (docs/watch.md, "Benchmark"). For 1,000 and 10,000 managed containers on
# one bridge, native (nftables) and --alongside-docker (docker-20.10, iptables):
#   - the time from Docker's start event to the watcher's log line for its sync (written once
#     the kernel has the rules), p50 and p99 over 200 starts one at a time, and for native to
#     the container's address appearing in the kernel (nft monitor in the namespace);
#   - the watcher's VmRSS before and after 100,000 events that change nothing, read after
#     each fifth of them (once the watcher has taken them in).
# With each row, the sync's own duration (runApply, from the watcher's log line) and its
# kernel transaction: what the start-to-kernel time is made of. The watcher runs with its
# defaults (a drift check every 5 s) and the unit's MALLOC_ARENA_MAX=2, as a host would run it.
# The daemon is Benchmarks/fake-engine.py, a fake Engine API (20.10, API 1.41) on a unix
# socket; the watcher is a release build, in a network namespace of this script's own
# (pc-wbench-PID-*), deleted on every exit. Targets: p99 <= 50 ms at 10,000 containers for
# native; RSS growth under 5 MiB.
#
# Usage: sudo bash Benchmarks/watch.sh [--quick] [--sizes "1000 10000"] [--starts 200]
#   --quick   100 containers, 20 starts, 10,000 events: a smoke test, not a measurement.
#   --sizes, --starts   other sizes, fewer starts (a sync that takes seconds makes 200 of them
#             take long; the p99 of fewer starts is their maximum, and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

sizes=(1000 10000) starts=200 events=100000
while [ $# -gt 0 ]; do
    case $1 in
    --quick) sizes=(100) starts=20 events=10000 quick=true ;;
    --sizes) read -ra sizes <<<"${2:?--sizes needs a list}"; shift ;;
    --starts) starts=${2:?--starts needs a number}; shift ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (usage: Benchmarks/watch.sh [--quick] [--sizes LIST] [--starts N])" >&2; exit 2 ;;
    esac
    shift
done
quick=${quick:-false}
[ "$(id -u)" -eq 0 ] || { echo "Benchmarks/watch.sh needs root (network namespaces, nftables)" >&2; exit 2; }

scratch=$repo/.build-bench
work=$(mktemp -d /tmp/pc-wbench.XXXXXX)
prefix="pc-wbench-$$"
driver=
cleanup() {
    local pid namespace
    [ -n "$driver" ] && { kill -TERM "$driver" 2>/dev/null || true; wait "$driver" 2>/dev/null || true; }
    if [ -f "$work/pids" ]; then
        while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$work/pids"
    fi
    for namespace in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do
        ip netns delete "$namespace" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }

say "building portcullis (release, --scratch-path .build-bench)..."
swift build -c release --scratch-path "$scratch" --product portcullis >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }
portcullis=$scratch/release/portcullis

printf '\nportcullis watch benchmark: %s, %s cores, %s, %s\n' "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo "?")" \
    "$(nproc)" "$(uname -r)" "$(nft --version 2>/dev/null | head -1)"
$quick && printf '(--quick: a smoke test, the figures are not measurements)\n'
printf '\n%-10s %-10s %8s %12s %12s %12s %12s %10s %10s %10s\n' containers mode "1st sync" "kernel p50" \
    "kernel p99" "log p50" "log p99" "RSS before" "RSS after" growth
results=()
case_number=0
for n in "${sizes[@]}"; do
    for mode in native alongside; do
        case_number=$((case_number + 1))
        say "[$mode, $n containers] starting the watcher, then $starts starts and $events events..."
        python3 "$repo/Benchmarks/fake-engine.py" case --portcullis "$portcullis" --work "$work" \
            --namespace "$prefix-$case_number" --mode "$mode" --containers "$n" --starts "$starts" \
            --events "$events" --pids "$work/pids" >"$work/result.json" &
        driver=$!
        wait "$driver" || { say "failed: $mode, $n containers"; cat "$work"/watch-"$mode"-"$n".log >&2 || true; exit 1; }
        driver=
        result=$(cat "$work/result.json")
        results+=("$result")
        python3 - "$result" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
mib = lambda kib: f"{kib / 1024:.1f} MiB"
ms = lambda v: "-" if v is None else f"{v:.1f} ms"
print(f"{r['containers']:<10} {r['mode']:<10} {r['first_sync_s']:>7.1f}s {ms(r['kernel_p50_ms']):>12} "
      f"{ms(r['kernel_p99_ms']):>12} {ms(r['log_p50_ms']):>12} {ms(r['log_p99_ms']):>12} "
      f"{mib(r['rss_before_kib']):>10} {mib(r['rss_after_kib']):>10} "
      f"{(r['rss_after_kib'] - r['rss_before_kib']) / 1024:>+9.1f}M"
      + (f"  ({r['missed']} of the starts not seen in nft monitor"
         + (f", which exited with {r['monitor_exit']})" if r['monitor_exit'] is not None else ")")
         if r['missed'] else ""))
print(f"{'':<21} VmRSS after each fifth of the events: "
      + ", ".join(mib(kib) for kib in r["rss_series_kib"][1:]))
print(f"{'':<21} the sync itself (runApply, the watcher's own figure): p50 {ms(r['sync_p50_ms'])}, "
      f"p99 {ms(r['sync_p99_ms'])}; its kernel transaction: p50 {ms(r['kernel_commit_p50_ms'])}, "
      f"p99 {ms(r['kernel_commit_p99_ms'])}; {r['events']:,} events taken in in {r['events_drained_s']} s")
EOF
    done
done

printf '\nTargets\n'
python3 - "${results[@]}" <<'EOF'
import json, sys
results = [json.loads(a) for a in sys.argv[1:]]
def mark(ok): return "met" if ok else "MISSED"
for r in results:
    if r["mode"] == "native" and r["containers"] == 10000:
        # nft monitor's figure, else the sync's log line (written once the kernel has the rules).
        seen, p99 = ("nft monitor", r["kernel_p99_ms"]) if r["kernel_p99_ms"] is not None else ("log line", r["log_p99_ms"])
        print(f"  p99 start-to-kernel <= 50 ms at 10,000 containers, native: {p99} ms ({seen}) over {r['starts']} starts: "
              f"{mark(p99 is not None and p99 <= 50)}")
for r in results:
    growth = (r["rss_after_kib"] - r["rss_before_kib"]) / 1024
    print(f"  RSS growth < 5 MiB over {r['events']:,} events, {r['mode']}, {r['containers']:,}: {growth:+.1f} MiB: {mark(growth < 5)}")
EOF
