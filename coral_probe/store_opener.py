"""Opening the store off the critical path of a script's start."""

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Store


def script_id_of(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


class DeferredStore:
    """A Store opened on another thread, first needed after the script was
    spawned: `coral run` starts Deno while DuckDB loads (its import alone is
    ~80 ms, and holds the GIL: opening it earlier slows the import check)."""

    def __init__(self, path: Path):
        self._path = path
        self._store: Store | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()

    def start(self) -> None:
        with self._start_lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._open, args=(self._path,), name="coral-store-open",
                                 daemon=True).start()

    def _open(self, path: Path) -> None:
        try:
            from .store import Store  # DuckDB is imported here, on this thread

            self._store = Store(path)
        except BaseException as e:  # noqa: BLE001 - re-raised on first use
            self._error = e
        finally:
            self._ready.set()

    def get(self) -> "Store":
        self.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._store is not None
        return self._store

    def __getattr__(self, name: str):
        return getattr(self.get(), name)

    def interrupt(self) -> None:
        if self._store is not None:  # before it is open, nothing runs on it
            self._store.interrupt()

    def close(self) -> None:
        if not self._started:
            return
        self._ready.wait()
        if self._store is not None:
            self._store.close()
