"""The ghost-node daemon: the Node that actors/node.py's main() runs once the config is
loaded and the state directory locked.

Process lifecycle, in a fixed order (and undone in reverse, in `finally`): logging -> event
store -> NodeStarted -> supervision tree -> node.json -> READY=1 -> Twisted reactor in the main
thread ... SIGTERM/SIGINT -> STOPPING=1 -> actors stopped (root first, so children stop in
reverse start order) -> NodeStopped -> store closed (the state directory is released by
main())."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, cast

from pykka import ActorRef, ActorRegistry
from twisted.internet import reactor as _reactor
from twisted.internet.error import ReactorNotRunning

from actors.chaos import ChaosMode
from actors.edge import (
    child_env,
    edge_checks,
    notifier_spec,
    service_specs,
    tunnel_specs,
    watcher_specs,
)
from actors.exits import EXIT_GAVE_UP, EXIT_OK, EXIT_USAGE, version
from actors.messages import AddCheck, GaveUp
from actors.patch_actor import PatchActor, PatchService
from actors.patches.testing import default_test_runner
from actors.ports import ActorProbe, HealthProbe
from actors.recorder import StoreRecorder
from actors.service import GetService
from actors.spec import ChildSpec
from actors.tree import TreeSpec, build_tree
from actors.tunnel import GetTunnel
from actors.watcher import GetWatchInfo, expect_writes
from actors.webhook import Binding, WebhookActor
from adapters import systemd
from adapters.config import Config, EnvSecrets, LogConfig
from adapters.logging_setup import Redactor, configure_logging, route_twisted_logs
from adapters.statedir import PreviousRun, StateDir, default_log_file
from adapters.twisted_bridge import ShutdownReactor, install_shutdown
from adapters.web.app import WebConfig, WebServices
from eventstore import NewEvent, SQLiteEventStore
from eventstore.catalogue import NODE_STREAM, EventType

log = logging.getLogger("ghost.node")

DEFAULT_HEALTH_INTERVAL_S = 10.0


class _Reactor(ShutdownReactor, Protocol):
    def run(self, installSignalHandlers: bool = True) -> None: ...
    def stop(self) -> None: ...
    def callWhenRunning(self, f: Any, /, *args: Any, **kw: Any) -> Any: ...


reactor = cast(_Reactor, _reactor)


def _watchdog_ping() -> None:
    systemd.watchdog()  # False (no NOTIFY_SOCKET) is fine: not run by systemd


def _expect_writes(watcher: ChildSpec, paths_to_sha: Mapping[str, str | None], source: str) -> None:
    """PatchFlow -> the workspace's watcher, just before it writes, so that the watcher reports
    those writes as `patch:<id>`. Registered synchronously in the watcher's thread-safe
    expectations (not a tell that could wait in its mailbox behind batches while its flusher
    already reports the write as `external`), and kept across the watcher's restarts.
    Attribution is best effort: a watcher that is down never fails nor blocks a patch."""
    expect_writes(watcher.handle, paths_to_sha, source)


def _tests_line(tests: Mapping[str, str]) -> str:
    if "command" in tests:
        return f"{tests['command']} ({tests['origin']})"
    return f"none, {tests['reason']}"


class Node:
    def __init__(
        self,
        config: Config,
        secrets: EnvSecrets,
        state: StateDir,
        previous: PreviousRun | None,
        chaos: Sequence[ChaosMode],
        stop_timeout_s: float,
        web: WebConfig | None = None,
    ) -> None:
        self.config = config
        self.secrets = secrets
        self.state = state
        self.previous = previous
        self.chaos = list(chaos)
        self.stop_timeout_s = stop_timeout_s
        self.exit_code = EXIT_OK
        self.stop_timed_out = False
        self.patches: PatchService | None = None
        self.web = web or WebConfig(host=config.node.host, port=config.node.port)
        self._token = ""
        self._token_new = False
        self._token_hint = ""
        self._redactor = Redactor()
        self._served_at: tuple[str, int] | None = None
        self._early_signal: int | None = None

    def run(self) -> int:
        self._hold_early_signals()
        redactor = configure_logging(self._log_config(), secrets=self.secrets.values())
        route_twisted_logs()
        token = self.state.token(self.secrets.token)
        redactor.add(token.value)
        self._redactor = redactor
        self._token = token.value
        self._token_new = token.source == "generated"
        self._token_hint = "GHOST_TOKEN" if token.source == "env" else f"in {self.state.token_path}"
        store = SQLiteEventStore(self.state.events_db, durability=self.config.node.durability)
        try:
            self._record_start(store)
            self._serve(store)
        finally:
            store.append(NODE_STREAM, [NewEvent(EventType.NODE_STOPPED, self._stop_data())])
            store.close()
            # Stopped and recorded: another stop request is moot. Without this, one arriving
            # while the interpreter exits (it puts the default actions back) killed the process,
            # and systemd saw a stop that had gone well exit by SIGTERM.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
        return self.exit_code

    def _serve(self, store: SQLiteEventStore) -> None:
        watchdog_s = systemd.watchdog_interval_s()
        interval = DEFAULT_HEALTH_INTERVAL_S
        if watchdog_s is not None:
            interval = min(interval, watchdog_s / 2)  # ping at least twice per timeout
        journal = self.state.path / "journal"
        recorder = StoreRecorder(store)
        # Core, in start order: a workspace's watcher before its patch actor, so the patch
        # actor's first writes are already attributed (ExpectWrites) rather than "external".
        watchers = {
            spec.name.removeprefix("watcher."): spec
            for spec in watcher_specs(self.config, store, recorder)
        }
        # Tests run the workspace's code: every secret variable the config names is removed
        # from their environment, and every secret value from their output.
        test_runner = partial(
            default_test_runner,
            env=child_env(self.config),
            scrub=self._redactor,
            hidden=(self.state.path,),
        )
        patch_specs = {
            ws.name: ChildSpec(
                f"patch.{ws.name}",
                partial(
                    PatchActor,
                    ws,
                    store,
                    journal / ws.name,
                    expect_writes=partial(_expect_writes, watchers[ws.name]),
                    test_runner=test_runner,
                ),
            )
            for ws in self.config.workspaces
        }
        self.patches = PatchService(
            {name: spec.handle for name, spec in patch_specs.items()},
            store,
            self.config.workspaces,
        )
        tunnels = tunnel_specs(self.config, recorder)
        services = service_specs(self.config, recorder)
        web_services = WebServices(
            store=store,
            patches=self.patches,
            token=self._token,
            version=version(),
            hmac_secret=self.secrets.hmac_secret,
            slack_signing_secret=self.secrets.slack_signing_secret,
            watchers={
                name: ActorProbe(spec.handle, GetWatchInfo()) for name, spec in watchers.items()
            },
            tunnels={
                spec.name.removeprefix("tunnel."): ActorProbe(spec.handle, GetTunnel())
                for spec in tunnels
            },
            services={
                spec.name.removeprefix("service."): ActorProbe(spec.handle, GetService())
                for spec in services
            },
            rotate_token=None if self._token_hint == "GHOST_TOKEN" else self._rotate_token,
            signatures_path=self.state.signatures_path,
            sessions_path=self.state.sessions_path,
        )
        webhook = ChildSpec(
            "webhook",
            partial(
                WebhookActor,
                self.web,
                web_services,
                self._serving,
                Binding(),
                on_never_bound=lambda exc: reactor.callFromThread(self._cannot_serve, exc),
            ),
        )
        port = self.config.node.port
        dashboard = f"http://{self.config.node.host}:{port}/dashboard" if port else None
        notifier = notifier_spec(self.config, self.secrets, store, dashboard)
        core = [*watchers.values(), *patch_specs.values()]
        tree = build_tree(
            TreeSpec(
                core=core,
                edge=[webhook, notifier],
                links=[*tunnels, *services],
                chaos=self.chaos,
            ),
            self.config.supervisor,
            recorder,
            on_give_up=lambda gave_up: reactor.callFromThread(self._give_up, gave_up),
            # A real write through the store's writer, without adding an event every round.
            store_check=lambda: store.save_checkpoint("health-probe", store.last_position()),
            watchdog_ping=_watchdog_ping,
            health_interval_s=interval,
        )
        for check in edge_checks(tunnels, services):
            tree.health.tell(AddCheck(check))
        web_services.health = HealthProbe(tree.health)
        web_services.actors = {leaf.name: ActorProbe(leaf.handle) for leaf in tree.leaves}
        # WebhookActor.setup() binds on the reactor thread, so it completes once reactor.run()
        # starts below; it then calls _serving (node.json, banner, READY=1).
        root: ActorRef[Any] = tree.root.launch()
        handle = install_shutdown(
            reactor, lambda: self._stop_actors(root), timeout=self.stop_timeout_s
        )
        # The stop signals are ours from start to end: held until the reactor runs, then
        # handed to it by _take_signals. Twisted installs none (its SIGTERM handler logged from
        # the signal handler and stopped the reactor once per signal; the node starts no
        # process through Twisted, so it needs no SIGCHLD handler either).
        reactor.callWhenRunning(self._take_signals)
        reactor.run(installSignalHandlers=False)
        self.stop_timed_out = handle.timed_out

    def _hold_early_signals(self) -> None:
        """Until the reactor runs (it installs its own handlers), SIGTERM/SIGINT would kill
        the process with NodeStopped unwritten and actors half started: systemd stopping a
        node that is still starting. Remember the signal instead and stop cleanly once the
        reactor runs."""

        def remember(signum: int, _frame: object) -> None:
            self._early_signal = signum

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, remember)

    def _take_signals(self) -> None:
        """Reactor thread, once running: stop signals go to the reactor from now on, then act
        on one that came while starting (in this order, so none falls between the two). Ours,
        not Twisted's handlers: Twisted stops the reactor on every SIGTERM, and each one after
        the first logs a ReactorNotRunning traceback while the node is already stopping."""

        def on_stop_signal(signum: int, _frame: object) -> None:
            # Nothing but a hand-off here: a handler that logged could interrupt the main
            # thread inside a log write (to a file, say) and write again, which can hang the
            # node under a storm of signals. The reactor logs it.
            reactor.callFromThread(self._stop_requested, signum)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_stop_signal)
        if self._early_signal is not None:
            log.info("%s arrived while starting: stopping", signal.Signals(self._early_signal).name)
            self._stop_reactor()

    def _stop_requested(self, signum: int) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        self._stop_reactor()

    def _stop_reactor(self) -> None:
        """Reactor thread. Several reasons may ask at once (signals, a give-up, a failed bind):
        the first one stops the reactor, the others find it stopping already."""
        try:
            reactor.stop()
        except ReactorNotRunning:
            log.debug("stop requested while already stopping")

    def _serving(self, host: str, port: int) -> None:
        """WebhookActor's thread, after every bind: publish where the node serves. The banner
        (with the token) goes to the terminal only, never to the log or an event."""
        if self._served_at == (host, port):
            return
        first = self._served_at is None
        self._served_at = (host, port)
        url = f"http://{host}:{port}"
        self.state.write_node_json(host, port, url)
        workspaces = ", ".join(f"{w.name} ({w.path})" for w in self.config.workspaces)
        if first:
            print(
                f"ghost-node {version()}: workspace {workspaces}; state {self.state.path}; "
                f"events {self.state.events_db}. Ctrl-C stops it.",
                flush=True,
            )
            for ws in self.config.workspaces:
                print(f"tests ({ws.name}): {_tests_line(ws.tests)}", flush=True)
        # The token goes to a person's terminal on the run that made it, and nowhere else: a
        # non-terminal stdout is journald or a log file, and a later start's banner would put
        # it there again.
        if first and self._token_new and sys.stdout.isatty():
            print(f"dashboard: {url}/dashboard?token={self._token}", flush=True)
        else:
            print(f"dashboard: {url}/dashboard (token: {self._token_hint})", flush=True)
        log.info("serving on %s", url)
        if first:
            systemd.ready(f"serving {workspaces} on {url}")
        else:
            systemd.status(f"serving on {url}")

    def _log_config(self) -> LogConfig:
        """The config's [log]; without a file, `<state>/logs/ghost-node.log` (rotated) besides
        stderr, so that `ghost logs` has something to show wherever the node ran."""
        if self.config.log.file is not None:
            return self.config.log
        return replace(self.config.log, file=default_log_file(self.state.path))

    def _rotate_token(self) -> str:
        """POST /token/rotate: the new token on disk, and never in a log line."""
        token = self.state.rotate_token()
        self._redactor.add(token.value)
        self._token = token.value
        log.info("node token rotated (%s)", self.state.token_path)
        return token.value

    def _stop_actors(self, root: ActorRef[Any]) -> None:
        """Runs in the shutdown thread (never the reactor's): stopping the root stops its
        children in reverse start order; stop_all catches anything started outside it."""
        systemd.stopping("stopping")
        log.info("stopping actors")
        root.stop(block=True, timeout=self.stop_timeout_s)
        ActorRegistry.stop_all(block=True, timeout=self.stop_timeout_s)

    def _cannot_serve(self, error: Exception) -> None:
        """Reactor thread: the first bind failed. A usage problem (SPEC §3 exit 2), not one
        for the supervisor to retry forever."""
        if self.exit_code != EXIT_OK:
            return
        print(
            f"ghost-node: {error} (is another ghost-node running? choose another --port)",
            file=sys.stderr,
            flush=True,
        )
        log.critical("cannot serve: %s", error)
        self.exit_code = EXIT_USAGE
        self._stop_reactor()

    def _give_up(self, gave_up: GaveUp) -> None:
        """Reactor thread: the root supervisor gave up. Exit 70 so systemd restarts us."""
        log.critical(
            "supervisor %s gave up (%s); exiting with status %d",
            gave_up.supervisor,
            gave_up.reason,
            EXIT_GAVE_UP,
        )
        self.exit_code = EXIT_GAVE_UP
        systemd.status(f"supervisor gave up: {gave_up.reason}")
        self._stop_reactor()

    def _record_start(self, store: SQLiteEventStore) -> None:
        events = []
        if self.previous is not None:
            # The previous run never wrote its NodeStopped: record its end on its behalf.
            events.append(
                NewEvent(
                    EventType.NODE_STOPPED,
                    {
                        "pid": self.previous.pid,
                        "started_at": self.previous.started_at,
                        "clean": False,
                        "reason": "the previous run ended without a clean stop (killed or crashed)",
                        "detected_at": datetime.now(UTC),
                    },
                )
            )
        events.append(
            NewEvent(
                EventType.NODE_STARTED,
                {
                    "pid": os.getpid(),
                    "version": version(),
                    "host": self.config.node.host,
                    "port": self.config.node.port,
                    "state_dir": str(self.state.path),
                    "config": None if self.config.source is None else str(self.config.source),
                    "workspaces": [
                        {"name": w.name, "path": str(w.path)} for w in self.config.workspaces
                    ],
                    "previous_run_clean": self.previous is None,
                    "chaos": [m.kind for m in self.chaos],
                },
            )
        )
        store.append(NODE_STREAM, events)

    def _stop_data(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "clean": True, "exit_code": self.exit_code}
