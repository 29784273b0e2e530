"""Workspace files: crash-safe multi-file transactions (journal, temp + fsync + rename)."""
