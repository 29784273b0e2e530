"""Projection snapshots: a rebuild's state saved at a position, so that the next rebuild folds
only the events after it. Derived and disposable: deleting `<state>/snapshots/` loses nothing,
and any snapshot that cannot be trusted is skipped, never repaired.

One file per snapshot, `projection-<position>.msgpack`, written whole to a temporary file and
renamed into place (a reader sees a complete snapshot or none). It holds a msgpack map:

    format    the layout of this file (FORMAT)
    code      a fingerprint of the folds' source (replay/state.py,
              adapters/ledger/projection.py, this file)
    reads     a fingerprint of the store's upcasters (Upcasters.fingerprint): how events were read
    position  the last event the state has seen
    hash      the stored hash-chain link of the event at `position`
    state     the NodeProjection, as `_dump` lays it out

A snapshot is used only if its format and fingerprints are this program's (a changed fold or
upcaster makes older snapshots unusable without anyone remembering to bump a version) and the
event at its position still carries the same chain link: it was taken from this store, not from
a restored or rewritten one. `ghost replay --verify` never uses one: it trusts nothing derived.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

from adapters.durable import atomic_write
from adapters.ledger import projection as patches_module
from adapters.ledger.projection import PatchView
from eventstore import codec
from eventstore.errors import CorruptEventError
from replay import state as state_module
from replay.state import ActorView, FileState, LinkView, NodeProjection

log = logging.getLogger(__name__)

FORMAT = 1
KEEP = 2  # snapshots kept: the newest, and one more in case the newest turns out unusable
# What reading a layout that is not _dump's raises (CorruptEventError: bytes the codec refuses).
_NOT_OUR_LAYOUT = (AttributeError, KeyError, IndexError, TypeError, ValueError)
_NAME = re.compile(r"^projection-(\d{1,19})\.msgpack$")
_MAX_BYTES = 1 << 31  # a snapshot is our own file: bounded only against a runaway one


def _fingerprint() -> str | None:
    """None when the folds' source cannot be read (a frozen or zipped install): then a
    snapshot could not tell which folds made it, and none is saved or used."""
    digest = hashlib.sha256(str(FORMAT).encode())
    try:
        for source in (state_module.__file__, patches_module.__file__, __file__):
            digest.update(Path(source).read_bytes())
    except (OSError, TypeError):
        return None
    return digest.hexdigest()


CODE = _fingerprint()


@dataclass(frozen=True, slots=True)
class Snapshot:
    position: int
    chain_hash: bytes
    projection: NodeProjection


class SnapshotDir:
    """The snapshots of one event store, in `<directory of events.db>/snapshots/`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def beside(cls, events_db: Path) -> SnapshotDir:
        return cls(events_db.parent / "snapshots")

    def positions(self) -> list[int]:
        """Positions of the snapshots present, newest first."""
        try:
            names = os.listdir(self.path)
        except OSError:
            return []
        found = (_NAME.match(name) for name in names)
        return sorted((int(m.group(1)) for m in found if m), reverse=True)

    def latest(
        self, upto: int, chain_hash_at: Callable[[int], bytes | None], reads: str
    ) -> Snapshot | None:
        """The newest usable snapshot at or before position `upto`, of events read through
        upcasters of fingerprint `reads`. `chain_hash_at` gives the stored chain link of the
        event at a position (None: no such event)."""
        if CODE is None:
            return None
        for position in self.positions():
            if position > upto:
                continue
            snapshot = self._load(position, reads)
            if snapshot is None:
                continue
            if chain_hash_at(position) != snapshot.chain_hash:
                log.info("snapshot at %d is not of this store's events: skipped", position)
                continue
            return snapshot
        return None

    def save(self, projection: NodeProjection, chain_hash: bytes, reads: str) -> Path | None:
        """Save `projection` (at its position, whose event has `chain_hash`; events read
        through upcasters of fingerprint `reads`) and prune older
        snapshots. Best effort: a state directory this process cannot write (an operator
        reading another user's node, a full disk) only means the next rebuild starts earlier."""
        if CODE is None:
            return None
        body = codec.encode(
            {
                "format": FORMAT,
                "code": CODE,
                "reads": reads,
                "position": projection.position,
                "hash": chain_hash,
                "state": _dump(projection),
            }
        )
        target = self.path / f"projection-{projection.position}.msgpack"
        try:
            self.path.mkdir(mode=0o700, exist_ok=True)
            # A cache: never torn, but not worth an fsync (a lost one is rebuilt).
            atomic_write(target, body, durable=False)
        except OSError as exc:
            log.info("no snapshot saved in %s: %s", self.path, exc)
            return None
        for position in self.positions()[KEEP:]:
            self._discard(position)
        return target

    def _load(self, position: int, reads: str) -> Snapshot | None:
        path = self.path / f"projection-{position}.msgpack"
        try:
            with path.open("rb") as src:
                raw = src.read(_MAX_BYTES + 1)
            body = codec.decode(raw, _MAX_BYTES)
            header = (body.get("format"), body.get("code")) if isinstance(body, dict) else None
            if header != (FORMAT, CODE):
                log.info("snapshot %s is from another version: removed", path.name)
                self._discard(position)
                return None
            if body.get("reads") != reads:
                log.info("snapshot %s was read through other upcasters: skipped", path.name)
                return None
            if body.get("position") != position or not isinstance(body.get("hash"), bytes):
                raise CorruptEventError("header does not match the file name")
            return Snapshot(position, body["hash"], _load_state(body["state"]))
        except OSError as exc:
            log.info("snapshot %s unreadable: %s", path.name, exc)
            return None
        except (CorruptEventError, *_NOT_OUR_LAYOUT) as exc:
            log.warning("snapshot %s is damaged (%s): removed", path.name, exc)
            self._discard(position)
            return None

    def _discard(self, position: int) -> None:
        # Gone already, or not ours to remove: then it is skipped again next time.
        with contextlib.suppress(OSError):
            os.unlink(self.path / f"projection-{position}.msgpack")


# --- the state's layout ------------------------------------------------------------------------
# Plain lists and maps: msgpack builds them in C on load, where the codec's tuple extension
# would call back into Python for every tuple. The few tuple fields are restored by position.
_TUPLE_FIELDS = ("files", "changes", "decisions", "events")
_PATCH_TUPLES = tuple(i for i, name in enumerate(PatchView._fields) if name in _TUPLE_FIELDS)
_ACTOR_FIELDS = tuple(f.name for f in fields(ActorView))
_LINK_FIELDS = tuple(f.name for f in fields(LinkView))


def _dump(p: NodeProjection) -> dict[str, Any]:
    return {
        "position": p.position,
        # By the projection's key (the stream's id), which a tampered or odd event's own
        # patch_id need not equal.
        "patches": {key: _patch_row(view) for key, view in p.patches.items()},
        "files": {ws: {path: list(f) for path, f in fs.items()} for ws, fs in p.files.items()},
        "actors": [[getattr(a, n) for n in _ACTOR_FIELDS] for a in p.actors.values()],
        "tunnels": [[getattr(t, n) for n in _LINK_FIELDS] for t in p.tunnels.values()],
        "services": [[getattr(s, n) for n in _LINK_FIELDS] for s in p.services.values()],
        "notifications": dict(p.notifications),
        "runs": list(p.runs),
        "paused": p.paused,
    }


def _patch_row(view: PatchView) -> list[Any]:
    row: list[Any] = list(view)
    for i in _PATCH_TUPLES:
        row[i] = list(row[i])
    return row


def _load_state(d: Mapping[str, Any]) -> NodeProjection:
    new_view = cast(Callable[[type[PatchView], Iterable[Any]], PatchView], tuple.__new__)
    width = len(PatchView._fields)
    patches: dict[str, PatchView] = {}
    for key, row in d["patches"].items():
        if len(row) != width:
            raise ValueError(f"a patch row of {len(row)} fields, not {width}")
        for i in _PATCH_TUPLES:
            row[i] = tuple(row[i])
        patches[key] = new_view(PatchView, row)
    return NodeProjection(
        position=int(d["position"]),
        patches=patches,
        files={
            ws: {path: FileState(*f) for path, f in files.items()}
            for ws, files in d["files"].items()
        },
        actors={row[0]: ActorView(*row) for row in d["actors"]},
        tunnels={row[0]: LinkView(*row) for row in d["tunnels"]},
        services={row[0]: LinkView(*row) for row in d["services"]},
        notifications=dict(d["notifications"]),
        runs=list(d["runs"]),
        paused=bool(d["paused"]),
    )
