#!/usr/bin/env python3
"""A fake Docker Engine API and the driver of Benchmarks/watch.sh.

The engine answers what `portcullis watch` reads (EngineClient, EngineSession: /_ping,
/version, /info, /networks, /networks/ID, /containers/json, /containers/ID/json, and /events
as newline-separated JSON in a chunked response), in the shapes Docker 20.10 (API 1.41) gives
them, on a unix socket. It holds one bridge network, 198.18.0.0/15, and N running containers,
every other one labelled role=web, plus stopped ones to start.

`case` runs one measurement: the watcher (a release build) in a throwaway network namespace
against the engine, with a policy naming containers by label; then STARTS containers started
one at a time, each timed from writing its start event to the watcher's log line for that
sync (written once the kernel has the rules) and, for `native`, to its address appearing in
the kernel (`nft monitor` in the namespace); then EVENTS events that change nothing (the
death of containers the daemon does not have), and the watcher's VmRSS before them and after
each fifth of them. One JSON line of results on stdout.

Every process it starts is killed by PID, and its namespace deleted, on every way out; their
PIDs are also written to --pids for the calling script's own cleanup.

Usage: fake-engine.py case --portcullis BIN --work DIR --namespace NAME --mode native|alongside
                           --containers N [--starts 200] [--events 100000] [--pids FILE]
"""

import argparse
import ipaddress
import json
import os
import queue
import re
import signal
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

API = "1.41"
NETWORK_ID = "b3c1" + "0" * 60
SUBNET = ipaddress.ip_network("198.18.0.0/15")
GATEWAY = SUBNET.network_address + 1


def container_id(index):
    return f"{index:064x}"


class Engine:
    """The daemon's objects and the event streams open on it."""

    def __init__(self, running, stopped):
        self.lock = threading.Lock()
        self.containers = {}
        for index in range(running + stopped):
            self.containers[container_id(index)] = {
                "index": index,
                "running": index < running,
                "started": "2026-12-06T08:00:00.000000000Z",
            }
        self.streams = []

    @staticmethod
    def address(index):
        return str(GATEWAY + 1 + index)

    def network(self):
        return {
            "Name": "bench",
            "Id": NETWORK_ID,
            "Created": "2026-12-06T08:00:00.000000000Z",
            "Scope": "local",
            "Driver": "bridge",
            "EnableIPv6": False,
            "IPAM": {
                "Driver": "default",
                "Options": {},
                "Config": [{"Subnet": str(SUBNET), "Gateway": str(GATEWAY)}],
            },
            "Internal": False,
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": {},
            "Options": {"com.docker.network.bridge.name": "br-bench"},
            "Labels": {},
        }

    def inspect(self, cid):
        with self.lock:
            state = self.containers.get(cid)
            if state is None:
                return None
            index, running, started = state["index"], state["running"], state["started"]
        address = self.address(index)
        mac = "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(address).packed)
        return {
            "Id": cid,
            "Created": "2026-12-06T07:59:59.000000000Z",
            "Path": "/bin/sleep",
            "Args": ["infinity"],
            "State": {
                "Status": "running" if running else "exited",
                "Running": running,
                "Paused": False,
                "Restarting": False,
                "OOMKilled": False,
                "Dead": False,
                "Pid": 1000 + index if running else 0,
                "ExitCode": 0,
                "Error": "",
                "StartedAt": started,
                "FinishedAt": "0001-01-01T00:00:00Z",
            },
            "Image": "sha256:" + "1" * 64,
            "Name": f"/c{index}",
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "HostConfig": {"NetworkMode": "bench", "PortBindings": {}, "PublishAllPorts": False},
            "Config": {
                "Hostname": cid[:12],
                "ExposedPorts": {"80/tcp": {}},
                "Image": "bench:1",
                "Labels": {"role": "web"} if index % 2 == 0 else {},
            },
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": "",
                "Ports": {"80/tcp": None} if running else {},
                "Gateway": "",
                "IPAddress": "",
                "IPPrefixLen": 0,
                "MacAddress": "",
                "Networks": {
                    "bench": {
                        "IPAMConfig": None,
                        "Links": None,
                        "Aliases": [cid[:12]],
                        "NetworkID": NETWORK_ID,
                        "EndpointID": cid if running else "",
                        "Gateway": str(GATEWAY) if running else "",
                        "IPAddress": address if running else "",
                        "IPPrefixLen": SUBNET.prefixlen if running else 0,
                        "IPv6Gateway": "",
                        "GlobalIPv6Address": "",
                        "GlobalIPv6PrefixLen": 0,
                        "MacAddress": mac if running else "",
                        "DriverOpts": None,
                    }
                },
            },
        }

    def listing(self):
        with self.lock:
            running = [(cid, s["index"]) for cid, s in self.containers.items() if s["running"]]
        return [
            {"Id": cid, "Names": [f"/c{index}"], "Image": "bench:1", "State": "running", "Status": "Up"}
            for cid, index in running
        ]

    def start(self, index):
        with self.lock:
            state = self.containers[container_id(index)]
            state["running"] = True
            state["started"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())

    def emit(self, events):
        """Writes events to every open stream, as one chunk."""
        now = time.time_ns()
        lines = "".join(
            json.dumps(
                {
                    "status": action,
                    "id": cid,
                    "Type": "container",
                    "Action": action,
                    "Actor": {"ID": cid, "Attributes": {"name": name}},
                    "scope": "local",
                    "time": now // 1_000_000_000,
                    "timeNano": now,
                }
            )
            + "\n"
            for action, cid, name in events
        ).encode()
        with self.lock:
            streams = list(self.streams)
        for stream in streams:
            stream.put(lines)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine = None

    def log_message(self, *arguments):
        pass

    def address_string(self):
        return "unix"

    def send_json(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", API)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/v1."):
            path = "/" + path.split("/", 2)[2]
        engine = self.engine
        if path == "/_ping":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        elif path == "/version":
            self.send_json(
                200,
                {
                    "Version": "20.10.24",
                    "ApiVersion": API,
                    "MinAPIVersion": "1.12",
                    "Os": "linux",
                    "Arch": "amd64",
                    "KernelVersion": os.uname().release,
                },
            )
        elif path == "/info":
            self.send_json(200, {"ID": "BENCH", "ServerVersion": "20.10.24", "Driver": "overlay2"})
        elif path == "/networks":
            self.send_json(200, [engine.network()])
        elif path.startswith("/networks/"):
            if path.split("/")[2] in (NETWORK_ID, NETWORK_ID[:12], "bench"):
                self.send_json(200, engine.network())
            else:
                self.send_json(404, {"message": "network not found"})
        elif path == "/containers/json":
            self.send_json(200, engine.listing())
        elif path.startswith("/containers/") and path.endswith("/json"):
            document = engine.inspect(path.split("/")[2])
            if document is None:
                self.send_json(404, {"message": "No such container: " + path.split("/")[2]})
            else:
                self.send_json(200, document)
        elif path == "/events":
            self.stream_events()
        else:
            self.send_json(404, {"message": "page not found"})

    def stream_events(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", API)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        stream = queue.Queue()
        with self.engine.lock:
            self.engine.streams.append(stream)
        try:
            while True:
                data = stream.get()
                if data is None:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            with self.engine.lock:
                self.engine.streams.remove(stream)
            self.close_connection = True


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Lines:
    """A child's output lines, each with the monotonic time it was read."""

    def __init__(self, pipe, copy=None):
        self.lines = []
        self.condition = threading.Condition()
        self.copy = copy
        threading.Thread(target=self.read, args=(pipe,), daemon=True).start()

    def read(self, pipe):
        for raw in pipe:
            line = raw.decode(errors="replace")
            now = time.monotonic()
            if self.copy:
                self.copy.write(line)
                self.copy.flush()
            with self.condition:
                self.lines.append((now, line))
                self.condition.notify_all()

    def wait(self, pattern, start, timeout):
        """The first line from index `start` on that matches, with its time; None at the timeout."""
        deadline = time.monotonic() + timeout
        index = start
        with self.condition:
            while True:
                while index < len(self.lines):
                    when, line = self.lines[index]
                    index += 1
                    if pattern.search(line):
                        return when, line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.condition.wait(remaining)

    def mark(self):
        with self.condition:
            return len(self.lines)


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


POLICY = """host {
    unknown-containers drop
}

group webs { label role=web }

egress webs -> 198.19.255.0/24 port 443/tcp
"""


def run_case(arguments, children):
    work, mode, count = arguments.work, arguments.mode, arguments.containers
    socket_path = f"{work}/docker-{mode}-{count}.sock"
    engine = Engine(count, arguments.starts)
    Handler.engine = engine
    server = Server(socket_path, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    policy = f"{work}/bench.policy"
    with open(policy, "w") as file:
        file.write(POLICY)
    subprocess.run(["ip", "netns", "add", arguments.namespace], check=True)
    flags = ["--layout", "native", "--backend", "nftables"] if mode == "native" else ["--alongside-docker"]
    log = open(f"{work}/watch-{mode}-{count}.log", "w")

    def started(process):
        children.append(process)
        if arguments.pids:
            with open(arguments.pids, "a") as file:
                file.write(f"{process.pid}\n")
        return process

    # `ip netns exec` execs the command: the PID is the watcher's (and nft's) own. Only for
    # native: alongside, every sync rewrites the whole chain, which nft monitor prints rule by
    # rule (10,000 lines a sync at 10,000 containers, seconds behind); the log line is the
    # figure there.
    kernel = monitor = None
    if mode == "native":
        monitor = started(
            subprocess.Popen(
                ["ip", "netns", "exec", arguments.namespace, "nft", "monitor"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        )
        kernel = Lines(monitor.stdout)
    began = time.monotonic()
    watcher = started(
        subprocess.Popen(
            ["ip", "netns", "exec", arguments.namespace, arguments.portcullis, "watch", policy]
            + flags
            + ["--docker-host", "unix://" + socket_path, "--state-dir", f"{work}/state-{mode}-{count}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # As contrib/systemd/portcullis-watch.service runs it.
            env={**os.environ, "MALLOC_ARENA_MAX": "2"},
        )
    )
    watched = Lines(watcher.stderr, copy=log)
    if watched.wait(re.compile(r"\] sync 1:? "), 0, 900) is None or watcher.poll() is not None:
        raise RuntimeError(f"the watcher did not sync at start (see {log.name})")
    first_sync = time.monotonic() - began
    if watched.wait(re.compile(r"\] sync 1 failed"), 0, 0) is not None:
        raise RuntimeError(f"the first sync failed (see {log.name})")

    kernel_ms, log_ms, sync_ms, apply_ms, missed = [], [], [], [], 0
    # The sync's own line: "... N ms in the kernel in M ms, K container(s)".
    timings = re.compile(r"([\d.]+) ms in the kernel in ([\d.]+) ms, \d+ container")
    for number in range(arguments.starts):
        index = count + number
        address = re.escape(engine.address(index))
        in_kernel = re.compile(rf"(?<![\d.]){address}(?![\d.])")
        in_log = re.compile(rf"\] sync \d+: c{index} started: ")
        kernel_mark, log_mark = kernel.mark() if kernel else 0, watched.mark()
        engine.start(index)
        sent = time.monotonic()
        engine.emit([("start", container_id(index), f"c{index}")])
        # Long enough for a sync of 10,000 containers on a busy machine: a start given up on
        # would still be synced, and delay every start after it.
        logged = watched.wait(in_log, log_mark, 900)
        if logged is None:
            raise RuntimeError(f"c{index}'s start was not synced within 900 s (see {log.name})")
        log_ms.append((logged[0] - sent) * 1000)
        # nft monitor crashes on large sets (exit -11): then the log line is the figure.
        if kernel and monitor.poll() is None:
            seen = kernel.wait(in_kernel, kernel_mark, 5)
            if seen is None:
                missed += 1
            else:
                kernel_ms.append((seen[0] - sent) * 1000)
        elif kernel:
            missed += 1
        timing = timings.search(logged[1])
        if timing:
            apply_ms.append(float(timing.group(1)))
            sync_ms.append(float(timing.group(2)))
    if watched.wait(re.compile(r"\] sync \d+ failed"), 0, 0) is not None:
        raise RuntimeError(f"a sync failed (see {log.name})")

    # Events that change nothing: deaths of containers the daemon does not have, in five
    # rounds. After each, the last container stops or starts again: once that sync is
    # logged the watcher has taken in every event before it, and VmRSS is read.
    # Native: the starts were element changes; the full sync that records them runs once
    # events are quiet (10 s). Its allocations are the starts', not the events': the first
    # reading is taken after it.
    if mode == "native":
        watched.wait(re.compile(r"\] sync \d+: recording element changes: "), 0, 120)
    rss = [vm_rss_kib(watcher.pid)]
    last = count + arguments.starts - 1
    rounds, batch, sent_events, drained = 5, 500, 0, 0.0
    for round_number in range(rounds):
        end = arguments.events * (round_number + 1) // rounds
        round_began = time.monotonic()
        for first in range(sent_events, end, batch):
            engine.emit([("die", f"{0xDEAD0000000 + n:064x}", "ghost") for n in range(first, min(first + batch, end))])
        sent_events = end
        running = round_number % 2 == 1
        mark = watched.mark()
        with engine.lock:
            engine.containers[container_id(last)]["running"] = running
        engine.emit([("start" if running else "die", container_id(last), f"c{last}")])
        done = re.compile(rf"\] sync \d+: c{last} {'started' if running else 'stopped'}: ")
        if watched.wait(done, mark, 300) is None:
            raise RuntimeError(f"the watcher did not take in the events (see {log.name})")
        drained += time.monotonic() - round_began
        rss.append(vm_rss_kib(watcher.pid))

    result = {
        "mode": mode,
        "containers": count,
        "starts": len(log_ms),
        "missed": missed,
        # nft monitor's exit status if it ended (it should not): why starts went unseen.
        "monitor_exit": monitor.poll() if monitor else None,
        "first_sync_s": round(first_sync, 2),
        "kernel_p50_ms": round(percentile(kernel_ms, 0.5), 1) if kernel_ms else None,
        "kernel_p99_ms": round(percentile(kernel_ms, 0.99), 1) if kernel_ms else None,
        "log_p50_ms": round(percentile(log_ms, 0.5), 1) if log_ms else None,
        "log_p99_ms": round(percentile(log_ms, 0.99), 1) if log_ms else None,
        "sync_p50_ms": round(percentile(sync_ms, 0.5), 1) if sync_ms else None,
        "sync_p99_ms": round(percentile(sync_ms, 0.99), 1) if sync_ms else None,
        "kernel_commit_p50_ms": round(percentile(apply_ms, 0.5), 1) if apply_ms else None,
        "kernel_commit_p99_ms": round(percentile(apply_ms, 0.99), 1) if apply_ms else None,
        "events": arguments.events,
        "events_drained_s": round(drained, 2),
        "rss_before_kib": rss[0],
        "rss_after_kib": rss[-1],
        "rss_series_kib": rss,
    }
    server.shutdown()
    for stream in list(engine.streams):
        stream.put(None)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    case = sub.add_parser("case")
    case.add_argument("--portcullis", required=True)
    case.add_argument("--work", required=True)
    case.add_argument("--namespace", required=True)
    case.add_argument("--mode", choices=["native", "alongside"], required=True)
    case.add_argument("--containers", type=int, required=True)
    case.add_argument("--starts", type=int, default=200)
    case.add_argument("--events", type=int, default=100_000)
    case.add_argument("--pids")
    arguments = parser.parse_args()

    # SIGTERM and SIGINT unwind through `finally`, which kills the children.
    def stop(number, frame):
        raise SystemExit(128 + number)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = []
    try:
        print(json.dumps(run_case(arguments, children)), flush=True)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        subprocess.run(["ip", "netns", "delete", arguments.namespace], stderr=subprocess.DEVNULL)
        try:
            os.unlink(f"{arguments.work}/docker-{arguments.mode}-{arguments.containers}.sock")
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
