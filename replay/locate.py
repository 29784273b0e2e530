"""Where the operator's commands act, found the way a git user expects:

- the state directory: `--state-dir DIR` (which must exist), the `state_dir` of `--config
  FILE`, else the nearest `.ghost/` holding a node's files, from the current directory up to
  the root, as git finds `.git/`. `ghost` never creates a state directory: only ghost-node
  does;
- a patch: its whole id or any unique prefix of it (`ghost show 4730`); an ambiguous prefix
  is refused with the candidates;
- a workspace: the path the store recorded in its last NodeStarted, with the recorded
  config's rules where that file still exists; never the current directory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from adapters.config import CliOverrides, Config, ConfigError, WorkspaceConfig, load_config
from adapters.defaults import DEFAULT_STATE_DIR
from eventstore import SQLiteEventStore
from eventstore.catalogue import EventType, patch_stream

# What a state directory a node has used holds (any one is enough to recognise it).
NODE_FILES = ("events.db", "node.json", "token")
AMBIGUOUS_SHOWN = 10


class UsageError(Exception):
    """Bad arguments, config, or nothing to act on: exit 2."""


def find_state_dir(start: Path) -> Path | None:
    """The nearest `.ghost/` with a node's files in `start` or one of its parents."""
    for directory in (start, *start.parents):
        candidate = directory / DEFAULT_STATE_DIR
        if candidate.is_dir() and any((candidate / name).exists() for name in NODE_FILES):
            return candidate
    return None


def operator_config(config: Path | None, state_dir: Path | None, cwd: Path) -> Config:
    """The config the command works with; its state directory exists."""
    try:
        if config is not None:
            found = load_config(config, CliOverrides(), cwd=cwd)
        else:
            where = state_dir if state_dir is not None else find_state_dir(cwd)
            if where is None:
                raise UsageError(
                    f"no event store here: no {DEFAULT_STATE_DIR}/ in {cwd} or any of its "
                    "parents; start ghost-node in your project first, or name one with "
                    "--state-dir or --config"
                )
            found = load_config(None, CliOverrides(state_dir=where), cwd=cwd)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    if not found.node.state_dir.is_dir():
        raise UsageError(
            f"no event store at {found.node.state_dir}: no such state directory (has "
            "ghost-node run there?)"
        )
    return found


def patch_id(store: SQLiteEventStore, typed: str) -> str | None:
    """The patch `typed` names (its id or a unique prefix of it); None when none does."""
    if store.stream_version(patch_stream(typed)) > 0:
        return typed
    names = store.streams(patch_stream(typed), limit=AMBIGUOUS_SHOWN + 1)
    if not names:
        return None
    if len(names) > 1:
        ids = [n.removeprefix("patch-") for n in names[:AMBIGUOUS_SHOWN]]
        more = " ..." if len(names) > AMBIGUOUS_SHOWN else ""
        raise UsageError(f"patch id {typed!r} is ambiguous: {', '.join(ids)}{more}")
    return names[0].removeprefix("patch-")


def recorded_workspace(store: SQLiteEventStore, name: str, state_dir: Path) -> WorkspaceConfig:
    """Workspace `name` as the last NodeStarted recorded it: its path (which must still
    exist), and the rules (include, exclude, sizes) of the config file it was started with
    when that file is still there, else the defaults."""
    started = store.read_all(types=[EventType.NODE_STARTED])
    recorded = {} if not started else started[-1].data
    paths = {w["name"]: Path(w["path"]) for w in recorded.get("workspaces", ())}
    path = paths.get(name)
    if path is None:
        raise UsageError(f"the store records no workspace {name!r} (known: {sorted(paths)})")
    if not path.is_dir():
        raise UsageError(f"workspace {name}: its recorded path {path} no longer exists")
    source = recorded.get("config")
    overrides = CliOverrides(state_dir=state_dir)
    try:
        if source and Path(source).is_file():
            workspaces = load_config(Path(source), overrides).workspaces
            same = [w for w in workspaces if w.name == name]
            if same:
                return replace(same[0], path=path)
        base = load_config(None, CliOverrides(state_dir=state_dir, workspace=path))
    except ConfigError as exc:
        raise UsageError(f"workspace {name}: {exc}") from exc
    return replace(base.workspaces[0], name=name)
