#!/usr/bin/python3
"""Tiny TCP peer for the traffic tests.

  probe.py serve PORT [PORT...]        answer "ok" on every connection to these ports
  probe.py connect HOST PORT [SOURCE]  exit 0 if HOST:PORT answers "ok" within the timeout
"""
import socket
import sys
import threading

TIMEOUT = 1.0


def serve(port):
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


def connect(host, port, source=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    if source:
        s.bind((source, 0))
    try:
        s.connect((host, port))
        return s.recv(3) == b"ok\n"
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        threads = [threading.Thread(target=serve, args=(int(p),), daemon=True) for p in sys.argv[2:]]
        for t in threads:
            t.start()
        print("ready", flush=True)
        for t in threads:
            t.join()
    else:
        ok = connect(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
        sys.exit(0 if ok else 1)
