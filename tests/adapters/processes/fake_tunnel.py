"""A fake tunnel program for tests: a real subprocess that behaves like cloudflared enough.

    python fake_tunnel.py TARGET_PORT [--die-after S] [--flap-after S --flap-for S]

It listens on 127.0.0.1 (a free port), forwards every TCP connection to 127.0.0.1:TARGET_PORT,
and prints two lines once it is ready:
    stderr: "INF |  https://fake-<hex>.trycloudflare.com  |"   (what url_pattern should find)
    stdout: "url=http://127.0.0.1:<port>"                      (where it really serves)
--die-after exits with code 1 after S seconds. --flap-after/--flap-for stop forwarding between
those times: connections then get "502 Bad Gateway", as from a tunnel edge that lost its origin.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import sys
import threading
import time

BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def serve(conn: socket.socket, target: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", target), timeout=5)
    except OSError:
        conn.sendall(BAD_GATEWAY)
        conn.close()
        return
    upstream.settimeout(None)
    threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
    pipe(upstream, conn)
    upstream.close()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", type=int)
    parser.add_argument("--die-after", type=float)
    parser.add_argument("--flap-after", type=float)
    parser.add_argument("--flap-for", type=float, default=1.0)
    args = parser.parse_args()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    started = time.monotonic()
    print(f"INF |  https://fake-{secrets.token_hex(3)}.trycloudflare.com  |", file=sys.stderr)
    print(f"url=http://127.0.0.1:{port}", flush=True)

    if args.die_after is not None:
        timer = threading.Timer(args.die_after, _exit, args=(1,))
        timer.daemon = True
        timer.start()

    while True:
        conn, _ = listener.accept()
        elapsed = time.monotonic() - started
        flapping = (
            args.flap_after is not None
            and args.flap_after <= elapsed < args.flap_after + args.flap_for
        )
        if flapping:
            conn.sendall(BAD_GATEWAY)
            conn.close()
            continue
        threading.Thread(target=serve, args=(conn, args.target), daemon=True).start()


def _exit(code: int) -> None:
    print("fake tunnel: connection to edge lost", file=sys.stderr, flush=True)
    os._exit(code)


if __name__ == "__main__":
    main()
