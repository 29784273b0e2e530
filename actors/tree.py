"""The supervision tree of ghost-node, built from the config.

    root (one_for_one; gives up -> the node exits 70)
    ├── core   (one_for_one)  PatchActor / WatcherActor per workspace      [when present]
    ├── edge   (one_for_one)  WebhookActor, NotifierActor
    ├── links  (one_for_one)  TunnelActor per [[tunnel]], ServiceActor per [[service]]  [when any]
    ├── health                HealthActor: pings every actor, store write, RSS/CPU, sd_notify
    └── chaos.N               only with --chaos (fault injection)

Children start in this order and stop in reverse, so the health actor, which watches the
others, stops first and the core (which owns in-flight patches) stops last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from actors.backoff import BackoffPolicy
from actors.chaos import ChaosActor, ChaosMode
from actors.handle import ChildHandle
from actors.health import HealthActor, default_checks
from actors.messages import GaveUp
from actors.recorder import EventRecorder
from actors.spec import ChildSpec, Liveness
from actors.supervisor import Supervisor
from adapters.config import SupervisorConfig


@dataclass(slots=True)
class TreeSpec:
    """What goes into the tree; the node fills it in the fixed start order."""

    core: list[ChildSpec] = field(default_factory=list)
    edge: list[ChildSpec] = field(default_factory=list)
    # Tunnels and services: their own supervisor, so that a flapping tunnel's restarts never
    # count against the web actor's budget (and cannot take the HTTP API down with them).
    links: list[ChildSpec] = field(default_factory=list)
    chaos: list[ChaosMode] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Tree:
    root: Supervisor
    health: ChildHandle
    leaves: tuple[ChildSpec, ...]  # every actor that is not a supervisor


def build_tree(
    spec: TreeSpec,
    config: SupervisorConfig,
    recorder: EventRecorder,
    on_give_up: Callable[[GaveUp], None],
    store_check: Callable[[], object],
    watchdog_ping: Callable[[], None],
    health_interval_s: float = 10.0,
    max_rss_bytes: int | None = None,
) -> Tree:
    backoff = BackoffPolicy(min_s=config.min_backoff_s, max_s=config.max_backoff_s)

    def supervisor(name: str, children: Sequence[ChildSpec]) -> Supervisor:
        return Supervisor(
            name,
            children,
            backoff=backoff,
            max_restarts=config.max_restarts,
            period_s=config.period_s,
            recorder=recorder,
        )

    top: list[ChildSpec] = []
    leaves: list[ChildSpec] = []
    for name, children in (("core", spec.core), ("edge", spec.edge), ("links", spec.links)):
        if children:
            top.append(ChildSpec(name, partial(supervisor, name, tuple(children))))
            leaves.extend(children)
    chaos = [
        ChildSpec(f"chaos.{i}", partial(ChaosActor, mode, f"chaos.{i}"))
        for i, mode in enumerate(spec.chaos, start=1)
    ]
    leaves.extend(chaos)
    health = ChildSpec(
        "health",
        lambda: HealthActor(
            default_checks([c.handle for c in leaves], store_check, max_rss_bytes),
            interval_s=health_interval_s,
            recorder=recorder,
            watchdog_ping=watchdog_ping,
        ),
    )
    top.append(health)
    top.extend(chaos)
    root = Supervisor(
        "root",
        top,
        backoff=backoff,
        max_restarts=config.max_restarts,
        period_s=config.period_s,
        # A child supervisor may spend its stop timeout per child while restarting: give it room.
        liveness=Liveness(interval_s=5.0, timeout_s=30.0),
        recorder=recorder,
        on_give_up=on_give_up,
    )
    return Tree(root, health.handle, tuple(leaves))
