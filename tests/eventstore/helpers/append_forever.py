"""Child process for the crash test: appends in a loop (several threads, mixed batch sizes) and
prints each acknowledged event id with its position, flushed, only after append() returned."""

from __future__ import annotations

import sys
import threading

from eventstore import NewEvent, SQLiteEventStore


def main() -> None:
    store = SQLiteEventStore(sys.argv[1])
    out_lock = threading.Lock()

    def appender(t: int) -> None:
        i = 0
        while True:
            events = [NewEvent("Tick", {"t": t, "i": i + k}) for k in range(1 + i % 3)]
            positions = store.append(f"t-{t}", events)
            with out_lock:
                for position, event in zip(positions, events, strict=True):
                    sys.stdout.write(f"{position} {event.event_id}\n")
                sys.stdout.flush()
            i += len(events)

    for t in range(4):
        threading.Thread(target=appender, args=(t,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
