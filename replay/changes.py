"""The `ghost` commands that change things: rollback (through the running node, or offline
under the state directory's lock), token, init and service install."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Literal

from adapters.config import (
    CliOverrides,
    ConfigError,
    NodeConfig,
    SupervisorConfig,
    WorkspaceConfig,
    load_config,
)
from adapters.defaults import DEFAULT_STATE_DIR, DEFAULT_WORKSPACE_NAME
from adapters.ledger.records import FlowError
from adapters.statedir import StateDir, StateDirError
from adapters.systemd import ServiceSpec, install_service, launchd_plist, systemd_unit
from eventstore import SQLiteEventStore
from replay import locate, online, reading
from replay.context import EXIT_OK, EXIT_PROBLEM, OfflineRollback, node_config
from replay.locate import UsageError
from replay.node_client import NodeClient
from replay.output import print_json


def cmd_rollback(args: argparse.Namespace) -> int:
    config = node_config(args)
    client = NodeClient.find(config.node.state_dir)
    if client is not None:  # a node runs here: it does the rollback, under its own lock
        return online.rollback(args, client)
    rollback: OfflineRollback | None = args.offline_rollback
    if rollback is None:
        raise UsageError("no node runs here, and this ghost has no offline write path; start it")
    state = StateDir(config.node.state_dir)
    try:
        state.open()  # the node's lock: refuses while a node (still starting) holds it
    except StateDirError as exc:
        raise UsageError(f"{exc}; retry once the node serves, or stop it") from exc
    try:
        with SQLiteEventStore(state.events_db, durability=config.node.durability) as store:
            view, _ = reading.patch_view(store, args.patch_id)
            if view is None:
                print(f"ghost: no patch {args.patch_id}", file=sys.stderr)
                return EXIT_PROBLEM
            # Where the node recorded the workspace, never the current directory.
            workspace = locate.recorded_workspace(store, view.workspace, state.path)
            journal = state.path / "journal" / workspace.name
            try:
                outcome = rollback(
                    workspace,
                    store,
                    journal,
                    args.patch_id,
                    force=args.force,
                    dry_run=args.dry_run,
                )
            except FlowError as exc:
                if args.json:
                    print_json(
                        {
                            "error": {
                                "code": exc.error.code,
                                "message": str(exc),
                                "details": dict(exc.error.details),
                            }
                        }
                    )
                else:
                    online.print_refusal(str(exc), exc.error.details)
                return EXIT_PROBLEM
    finally:
        state.close()
    if args.json:
        print_json(outcome.as_json())
    else:
        online.print_rolled_back(outcome.patch_id, args.dry_run, outcome.as_json())
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists():
        raise UsageError(f"{path} exists already; not overwriting it")
    if not path.parent.resolve().is_dir():
        raise UsageError(f"no directory {path.parent} to write {path.name} in")
    path.write_text(config_template(Path.cwd(), path.resolve().parent))
    print(f"wrote {path}; start the node with: ghost-node --config {path}")
    return EXIT_OK


def config_template(workspace: Path, config_dir: Path) -> str:
    """The config `ghost init` writes: every value is the default (adapters/defaults.py and
    the config's own), written out so that it can be edited, with the paths relative to the
    file (the workspace is the current directory), and a tunnel and Slack left to uncomment."""
    node, sup = NodeConfig(), SupervisorConfig()
    ws = WorkspaceConfig(name=DEFAULT_WORKSPACE_NAME, path=workspace)
    where = os.path.relpath(workspace.resolve(), config_dir)
    return f"""\
# ghost-node configuration (docs/SPEC.md, section 3). Relative paths are relative to this file.
[node]
host = "{node.host}"
port = {node.port}
state_dir = "{Path(where) / DEFAULT_STATE_DIR}"
durability = "{node.durability}"

[[workspace]]
name = "{ws.name}"
path = "{where}"
# test_command = ["pytest", "-q"]   # none: the node finds the project's own (pytest, npm test...)
test_timeout_s = {ws.test_timeout_s:g}
rollback_on_test_failure = {str(ws.rollback_on_test_failure).lower()}
approval = "{ws.approval}"           # "manual": patches wait for ghost approve / the dashboard

[supervisor]
min_backoff_s = {sup.min_backoff_s:g}
max_backoff_s = {sup.max_backoff_s:g}
max_restarts = {sup.max_restarts}
period_s = {sup.period_s:g}

# A public URL for ChatGPT (README, "Connect ChatGPT"): a cloudflared quick tunnel, no account.
# [[tunnel]]
# name = "cloudflare"
# command = ["cloudflared", "tunnel", "--url", "http://{node.host}:{node.port}"]
# url_pattern = "https://[a-z0-9-]+\\\\.trycloudflare\\\\.com"

# Slack (README, "Slack"): the variables' names; their values stay in the environment.
# [slack]
# webhook_url_env = "SLACK_WEBHOOK_URL"     # or bot_token_env = "..." and channel = "#dev"
# signing_secret_env = "SLACK_SIGNING_SECRET"
"""


def cmd_service_install(args: argparse.Namespace) -> int:
    # Before any node has run: the state directory need not exist yet.
    try:
        config = load_config(args.config, CliOverrides(state_dir=args.state_dir))
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    node = Path(__file__).resolve().parent.parent / "bin" / "ghost-node"
    config_path = args.config.resolve() if args.config else None
    spec = ServiceSpec.from_config(config, node, config_path)
    kind: Literal["systemd", "launchd"] = "launchd" if args.launchd else "systemd"
    if args.print:
        print(launchd_plist(spec) if args.launchd else systemd_unit(spec, user=args.user), end="")
        return EXIT_OK
    result = install_service(kind, args.user, spec, dest=args.dest)
    print(f"wrote {result.path}")
    for step in result.next_steps:
        print(f"  next: {step}")
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    """The node token (as `gh auth token` prints its own); --rotate makes a new one, taken at
    once by a running node."""
    state = StateDir(node_config(args).node.state_dir)
    if args.rotate:
        if os.environ.get("GHOST_TOKEN"):
            raise UsageError("GHOST_TOKEN is set: the token is that variable's; change it there")
        client = NodeClient.find(state.path)
        if client is not None:
            answer = client.request("POST", "/token/rotate", {})
            ended = answer.get("sessions_ended", 0)
            print(
                f"rotated; the node refuses the old token now ({ended} dashboard session(s) ended)"
            )
        else:
            try:
                state.rotate_token()
            except StateDirError as exc:
                raise UsageError(str(exc)) from exc
            print("rotated; the node will use the new token when it starts")
        print(f"the new token is in {state.token_path}", file=sys.stderr)
        return EXIT_OK
    token = state.read_token(os.environ.get("GHOST_TOKEN"))
    if token is None:
        raise UsageError(f"no token in {state.token_path} (the node writes it at its first start)")
    print(token.value)
    return EXIT_OK
