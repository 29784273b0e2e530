"""Fake children for the process tests (each a real subprocess):

crash --after S --code N        print to both streams, exit with code N after S seconds
serve --port P [--status C] [--allocate-mb M]
                                HTTP server on 127.0.0.1:P (0: any free port) answering
                                every GET with status C; prints "port=<n>" when listening;
                                holds M MB of touched memory
spawn --children N [--ignore-term] [--setsid] [--leader-exits]
                                start N grandchildren (sleeping; optionally ignoring
                                SIGTERM, optionally in their own session), print
                                "pids=<a,b,..>", then sleep (or exit at once)
flood --bytes N                 write N bytes of numbered lines to stdout, then exit 0
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import subprocess
import sys
import time


def crash(args: argparse.Namespace) -> None:
    print("starting up", flush=True)
    time.sleep(args.after)
    print(f"fatal: fake crash with code {args.code}", file=sys.stderr, flush=True)
    sys.exit(args.code)


def serve(args: argparse.Namespace) -> None:
    ballast = bytearray(args.allocate_mb * 1024 * 1024)
    for i in range(0, len(ballast), 4096):  # touch every page so it counts in RSS
        ballast[i] = 1
    status = args.status

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"port={server.server_address[1]}", flush=True)
    server.serve_forever()


def sleeper(ignore_term: bool, setsid: bool) -> list[str]:
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(600)\n"
    return [sys.executable, "-c", code]


def spawn(args: argparse.Namespace) -> None:
    kids = [
        subprocess.Popen(
            sleeper(args.ignore_term, args.setsid),
            start_new_session=args.setsid,
            stdout=subprocess.PIPE,
        )
        for _ in range(args.children)
    ]
    for kid in kids:  # wait until each has installed its signal handler
        assert kid.stdout is not None
        kid.stdout.readline()
    print("pids=" + ",".join(str(k.pid) for k in kids), flush=True)
    if args.leader_exits:
        os._exit(0)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)


def flood(args: argparse.Namespace) -> None:
    written, n = 0, 0
    out = sys.stdout.buffer
    while written < args.bytes:
        line = f"line {n}\n".encode()
        out.write(line)
        written += len(line)
        n += 1
    out.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("crash")
    p.add_argument("--after", type=float, default=0.0)
    p.add_argument("--code", type=int, default=3)
    p = sub.add_parser("serve")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--allocate-mb", type=int, default=0)
    p = sub.add_parser("spawn")
    p.add_argument("--children", type=int, default=2)
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--setsid", action="store_true")
    p.add_argument("--leader-exits", action="store_true")
    p = sub.add_parser("flood")
    p.add_argument("--bytes", type=int, default=1_000_000)
    args = parser.parse_args()
    {
        "crash": crash,
        "serve": serve,
        "spawn": spawn,
        "flood": flood,
    }[args.mode](args)


if __name__ == "__main__":
    main()
