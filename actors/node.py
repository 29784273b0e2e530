"""ghost-node: the daemon. (Foundation stage: opens the store, records NodeStarted, serves until
SIGINT/SIGTERM, records NodeStopped. The supervision tree is wired in by the daemon work.)"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Protocol, cast

from twisted.internet import reactor as _reactor

from eventstore import NewEvent, SQLiteEventStore


class _Reactor(Protocol):
    def run(self) -> None: ...
    def addSystemEventTrigger(self, phase: str, event: str, f: Any, *args: Any) -> Any: ...


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ghost-node")
    parser.add_argument("--state-dir", type=Path, default=Path(".ghost"))
    args = parser.parse_args(argv)
    state: Path = args.state_dir.resolve()
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = SQLiteEventStore(state / "events.db")
    store.append("node", [NewEvent("NodeStarted", {"pid": os.getpid(), "cwd": os.getcwd()})])
    print(f"ghost-node: workspace {os.getcwd()}, state {state}, events {store.path}", flush=True)

    def stop() -> None:
        store.append("node", [NewEvent("NodeStopped", {"pid": os.getpid(), "clean": True})])
        store.close()

    reactor = cast(_Reactor, _reactor)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
