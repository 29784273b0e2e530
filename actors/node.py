"""ghost-node: the entry point. Reads the arguments and the config, refuses a taken port, then
locks the state directory and runs the daemon (actors/daemon.py) in it.

Exit codes (SPEC §3): 0 clean stop, 2 bad config or arguments (or the state directory is in
use), 70 the root supervisor gave up (so systemd restarts the node).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from actors.exits import EXIT_USAGE, version
from adapters.config import CliOverrides, ConfigError, EnvSecrets, load_config
from adapters.processes.ports import cannot_listen
from adapters.statedir import StateDir, StateDirError

log = logging.getLogger("ghost.node")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ghost-node",
        description="Receive patches from a remote LLM and apply them safely (see README).",
    )
    parser.add_argument("--config", type=Path, help="TOML config file (docs/SPEC.md, section 3)")
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on; 0 = any free port")
    parser.add_argument("--state-dir", type=Path, help="state directory (default ./.ghost)")
    parser.add_argument("--workspace", type=Path, help="the workspace (default: current dir)")
    parser.add_argument(
        "--stop-timeout", type=float, default=10.0, help="seconds a clean stop may take"
    )
    parser.add_argument(
        "--chaos",
        action="append",
        default=[],
        metavar="MODE",
        help="fault injection for testing supervision: crash[:S], crash-on-start, hang[:S]",
    )
    parser.add_argument("--version", action="version", version=f"ghost-node {version()}")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(
            args.config,
            CliOverrides(
                host=args.host, port=args.port, state_dir=args.state_dir, workspace=args.workspace
            ),
        )
        secrets = EnvSecrets.from_env(os.environ, config.slack)
    except (ConfigError, ValueError) as exc:
        print(f"ghost-node: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Before anything is created: a taken port costs one line naming its holder, and no files.
    busy = cannot_listen(config.node.host, config.node.port)
    if busy is not None:
        print(f"ghost-node: {busy} (another ghost-node? choose another --port)", file=sys.stderr)
        return EXIT_USAGE
    _without_tls()
    # Twisted, pykka and the actors: imported only now that the node will run.
    from actors.chaos import ChaosMode
    from actors.daemon import Node
    from actors.edge import child_env
    from actors.webhook import web_config
    from adapters.processes.detect import with_detected_tests

    try:
        chaos = [ChaosMode.parse(mode) for mode in args.chaos]
        web = web_config(config, os.environ)
    except ValueError as exc:
        print(f"ghost-node: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Once, at start: a workspace whose config names no test command gets the one its
    # project shows (announced in the banner, shown in /health), probed with the tests' env.
    config = with_detected_tests(config, child_env(config))
    state = StateDir(config.node.state_dir)
    try:
        previous = state.open()
    except StateDirError as exc:  # includes StateDirLocked: a node already runs there
        print(f"ghost-node: {exc}", file=sys.stderr)
        return EXIT_USAGE
    node = Node(config, secrets, state, previous, chaos, args.stop_timeout, web)
    try:
        code = node.run()
    finally:
        state.close()
    stuck = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if node.stop_timed_out or stuck:
        # Actor threads are not daemons: one stuck (an actor its supervisor abandoned, or one
        # that ignored the stop) would keep the process alive and deaf to SIGTERM. NodeStopped
        # is recorded and the store closed: everything durable is done, so leave now.
        log.warning("exiting without joining stuck threads: %s", ", ".join(stuck) or "-")
        logging.shutdown()
        os._exit(code)
    return code


def _without_tls() -> None:
    """ghost-node serves plain HTTP (on loopback; TLS ends at the tunnel) and opens no TLS
    connection through Twisted (Slack's client uses the standard library's ssl). Twisted
    imports pyOpenSSL for startTLS whenever it is installed, as treq's `tls` extra makes it:
    ~13 MB of a resident node (cryptography's Rust bindings, libcrypto) for nothing. Marked
    absent before Twisted loads, they make Twisted take its path without TLS. Whatever comes
    to need TLS in the node must lift this first."""
    for name in ("OpenSSL", "service_identity"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
