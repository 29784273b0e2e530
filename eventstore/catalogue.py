"""The event types ghost-runner records (SPEC §6) and the streams they belong to.

One place for the names, so that writers (actors) and readers (projections, the CLI) cannot
drift apart. Types are a StrEnum, stored as plain strings by the codec.
"""

from __future__ import annotations

import enum


class EventType(enum.StrEnum):
    NODE_STARTED = "NodeStarted"
    NODE_STOPPED = "NodeStopped"
    NODE_PAUSED = "NodePaused"
    NODE_RESUMED = "NodeResumed"
    ACTOR_STARTED = "ActorStarted"
    ACTOR_FAILED = "ActorFailed"
    ACTOR_RESTARTING = "ActorRestarting"
    SUPERVISOR_GAVE_UP = "SupervisorGaveUp"
    HEALTH_CHANGED = "HealthChanged"
    PATCH_RECEIVED = "PatchReceived"
    PATCH_QUEUED = "PatchQueued"
    PATCH_REJECTED = "PatchRejected"
    PATCH_PENDING_APPROVAL = "PatchPendingApproval"
    PATCH_APPROVED = "PatchApproved"
    PATCH_DRY_RUN = "PatchDryRun"
    PATCH_APPLYING = "PatchApplying"
    PATCH_APPLIED = "PatchApplied"
    PATCH_RECOVERED = "PatchRecovered"
    PATCH_ROLLED_BACK = "PatchRolledBack"
    TESTS_STARTED = "TestsStarted"
    TESTS_FINISHED = "TestsFinished"
    FILES_CHANGED = "FilesChanged"
    WATCHER_WARNING = "WatcherWarning"
    TUNNEL_UP = "TunnelUp"
    TUNNEL_DOWN = "TunnelDown"
    SERVICE_STARTED = "ServiceStarted"
    SERVICE_EXITED = "ServiceExited"
    SERVICE_START_FAILED = "ServiceStartFailed"
    NOTIFICATION_SENT = "NotificationSent"
    NOTIFICATION_FAILED = "NotificationFailed"
    # Not written by anyone: what readers return in place of a stored event too large to
    # decode (one written before the writer refused such events), so that one bad event
    # cannot stop every reader. Its data: {"type", "bytes", "reason"}.
    EVENT_UNREADABLE = "EventUnreadable"


def unreadable_data(original_type: str, size: int, limit: int) -> dict[str, object]:
    """The data of an EventUnreadable stand-in."""
    return {
        "type": original_type,
        "bytes": size,
        "reason": f"{size} bytes, over the readers' {limit} byte limit",
    }


NODE_STREAM = "node"


def patch_stream(patch_id: str) -> str:
    return f"patch-{patch_id}"


def workspace_stream(name: str) -> str:
    return f"workspace-{name}"


def tests_stream(workspace: str) -> str:
    """On-demand test runs of a workspace (the webhook's `run_tests`), not tied to a patch."""
    return f"tests-{workspace}"


def actor_stream(name: str) -> str:
    return f"actor-{name}"


def supervisor_stream(name: str) -> str:
    return f"supervisor-{name}"


def tunnel_stream(name: str) -> str:
    return f"tunnel-{name}"


def service_stream(name: str) -> str:
    return f"service-{name}"
