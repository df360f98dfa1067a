#!/usr/bin/python3
"""Tiny TCP and UDP peer for the traffic tests.

  probe.py serve PORT[/udp] ...              answer "ok" on each port (TCP connections, UDP datagrams)
  probe.py connect HOST PORT[/udp] [SOURCE]  exit 0 if HOST:PORT answers "ok" within the timeout
"""
import socket
import sys
import threading

TIMEOUT = 1.0


def parse(spec):
    port, _, proto = spec.partition("/")
    return int(port), proto or "tcp"


def serve_tcp(port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(16)
    while True:
        connection, _ = listener.accept()
        try:
            connection.sendall(b"ok\n")
        finally:
            connection.close()


def serve_udp(port):
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("0.0.0.0", port))
    while True:
        _, peer = server.recvfrom(64)
        server.sendto(b"ok\n", peer)


def connect(host, spec, source=None):
    port, proto = parse(spec)
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(TIMEOUT)
    if source:
        s.bind((source, 0))
    try:
        s.connect((host, port))
        if proto == "udp":
            s.send(b"hello\n")
        return s.recv(3) == b"ok\n"
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        threads = []
        for spec in sys.argv[2:]:
            port, proto = parse(spec)
            target = serve_udp if proto == "udp" else serve_tcp
            threads.append(threading.Thread(target=target, args=(port,), daemon=True))
        for t in threads:
            t.start()
        print("ready", flush=True)
        for t in threads:
            t.join()
    else:
        ok = connect(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
        sys.exit(0 if ok else 1)
