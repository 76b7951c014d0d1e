"""`read --scheduler tcp://host:8786`: the --jobs shards run as tasks on a Dask cluster.

Each shard is one task: a worker reads the whole input from shared storage (the task carries
only paths) and keeps the connections of its shard, exactly as a `--jobs` worker process does
(parallel._messages), but collects its results instead of streaming them. The result stays on the
Dask worker; the client fetches it in parts by small tasks that depend on it (the scheduler
runs them where the result is) and merges all shards in the one-process order (parallel._merge).

Only complete shard results are ever read: a shard whose worker is lost mid-run is run again
by Dask from the start (so is a finished shard whose result was on the lost worker), and the
merge never sees a partial one, so the output is complete and nothing in it is duplicated.
A worker the scheduler removed while it ran or held a shard is reported as a note on stderr
(from the scheduler's own events).

Nothing here is imported unless --scheduler is given: `distributed` is an optional extra.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mailsniff import __version__
from mailsniff.errors import InputError, MailsniffError, UsageError
from mailsniff.model import Session
from mailsniff.parallel import OpenFrames, ShardResult, _merge, _messages, _Shard, error_message
from mailsniff.pipeline import Pipeline
from mailsniff.status import ExitStatus

__all__ = ["ClusterError", "ClusterRun", "cluster_shards", "connect", "run_shard"]

#: Seconds to wait for the scheduler to answer before giving up.
CONNECT_TIMEOUT = 10.0
#: A shard's messages fetched per part (one message per 2048 frames of the input).
_PART = 16


class ClusterError(MailsniffError):
    """The scheduler cannot be reached, or the cluster cannot run the shards."""

    exit_status = ExitStatus.NETWORK


def connect(address: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A distributed.Client of the scheduler at `address`.

    Raises:
        UsageError: distributed is not installed, or the address is not one it understands.
        ClusterError: nothing answers at the address within `timeout` seconds.
    """
    _knock(address, timeout)
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "--scheduler needs Dask distributed",
            hint="pip install 'mailsniff[cluster]' on this machine and the workers",
        ) from None
    # The client's own log lines (connection retries, a lost worker) are not mailsniff's
    # output: failures reach the user as one line each.
    logging.getLogger("distributed").setLevel(logging.CRITICAL)

    class Client(distributed.Client):
        def __del__(self) -> None:
            # A client whose connection failed is closed on collection: quickly and quietly
            # (distributed's own waits 20 s, then prints a traceback).
            with contextlib.suppress(Exception):
                self.close(timeout=1)  # type: ignore[no-untyped-call]

    # distributed enforces its timeout on the connection, not on the handshake after it (a
    # server that is not a scheduler keeps it waiting): the whole attempt gets a deadline here.
    outcome: list[Any] = []
    make: Any = Client

    def attempt() -> None:
        try:
            outcome.append(make(address, timeout=timeout, set_as_default=False))
        except BaseException as error:  # noqa: BLE001 - handed to the caller below
            outcome.append(error)

    thread = threading.Thread(target=attempt, name="mailsniff-connect", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    if not outcome:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: something listens there, "
            f"but no Dask scheduler answered within {timeout + 5:g} s"
        )
    if isinstance(outcome[0], ValueError):
        raise UsageError(f"--scheduler {address}: {outcome[0]}")
    if isinstance(outcome[0], OSError | TimeoutError):
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: {outcome[0]}".splitlines()[0]
        )
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _knock(address: str, timeout: float) -> None:
    """For a TCP address: fail at once when nothing listens there (Dask itself retries a
    refused connection until its timeout) or the host name is unknown."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme != "tcp":
        return
    host, colon, port_text = rest.rpartition(":")
    if not colon or "]" in port_text:
        host, port_text = rest, "8786"
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"--scheduler {address}: the port must be a number") from None
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror as error:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: unknown host {host!r}",
            hint=error.strerror,
        ) from None
    except TimeoutError:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: no answer within {timeout:g} s"
        ) from None
    except OSError as error:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: {error.strerror or error}",
            hint="is `dask scheduler` running there?",
        ) from None


def cluster_shards(client: Any) -> int:
    """The number of shards for a cluster: its worker threads (one task each at a time)."""
    info = client.scheduler_info(n_workers=-1)
    return sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values())


# -- on a worker --------------------------------------------------------------------------------


def run_shard(
    me: int,
    n: int,
    open_frames: OpenFrames,
    make_pipeline: Callable[[], Pipeline],
    prepare: Callable[[Session], Any] | None,
) -> tuple[str, list[Any]]:
    """One shard, as a Dask task: (mailsniff version, the messages a --jobs worker sends)."""
    messages: list[Any] = []
    try:
        for message in _messages(me, n, open_frames, make_pipeline, prepare):
            messages.append(message)
    except Exception as error:  # noqa: BLE001 - reported by the client as one line
        messages.append(error_message(error))
    return __version__, messages


def _part(result: tuple[str, list[Any]], start: int) -> tuple[str, list[Any], bool]:
    """Messages [start, start + _PART) of a shard's result; True when more follow."""
    version, messages = result
    return version, messages[start : start + _PART], start + _PART < len(messages)


# -- on the client ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Parts:
    """A connection-like view of one shard's result: recv() gives its messages in order,
    fetching the next part while the current one is merged."""

    client: Any
    shard: Any  # the shard's future
    me: int
    names: Callable[[str], str]
    buffer: deque[Any] = field(default_factory=deque)
    next_start: int = 0
    pending: Any = None  # the future of the next part
    more: bool = True

    def _request(self) -> None:
        self.pending = self.client.submit(
            _part, self.shard, self.next_start, key=f"{self.shard.key}-part-{self.next_start}"
        )
        self.next_start += _PART

    def recv(self) -> Any:
        while not self.buffer:
            if not self.more:
                raise EOFError
            if self.pending is None:
                self._request()
            version, messages, self.more = _result(self.pending, self.me)
            if version != __version__:
                raise ClusterError(
                    f"a Dask worker runs mailsniff {version}, this machine {__version__}",
                    hint="install the same version everywhere",
                )
            self.pending = None
            if self.more:
                self._request()
            self.buffer.extend(messages)
        message = self.buffer.popleft()
        if message[0] == "error":
            # Messages name the paths as the workers opened them: the user's names instead.
            message = ("error", self.names(message[1]), message[2], message[3])
        elif message[0] == "done":
            result: ShardResult = message[1]
            result.warnings = [self.names(w) for w in result.warnings]
            if result.truncated is not None:
                result.truncated = (self.names(result.truncated[0]), result.truncated[1])
        return message

    def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()


def _result(future: Any, me: int) -> Any:
    try:
        return future.result()
    except MailsniffError:
        raise
    except Exception as error:  # noqa: BLE001 - a task the cluster could not run
        name = type(error).__name__
        text = str(error).splitlines()[0] if str(error) else ""
        if name == "KilledWorker":
            text = "the workers running it were lost too many times"
        raise ClusterError(
            f"shard {me + 1} failed on the cluster: {name}" + (f": {text}" if text else ""),
            hint="every worker needs this mailsniff and Python: pip install 'mailsniff[cluster]'",
        ) from None


@dataclass(slots=True)
class ClusterRun:
    """One `read --scheduler` run: submits the shards, yields the merged sessions."""

    client: Any
    n: int
    paths: list[str]
    #: Notes for stderr: shards that were run again after a lost worker.
    notes: list[str] = field(default_factory=list)
    run: str = field(default_factory=lambda: f"mailsniff-{os.getpid()}-{time.time_ns()}")

    def absolute(self) -> list[str]:
        """The inputs as the workers open them: absolute paths (on shared storage)."""
        return [os.path.abspath(p) for p in self.paths]

    def names(self, text: str) -> str:
        """`text` from a worker with its absolute paths turned back into the user's names."""
        pairs = sorted(zip(self.absolute(), self.paths, strict=True), key=lambda p: -len(p[0]))
        for full, given in pairs:
            if full != given:
                text = text.replace(full, given)
        return text

    def sharded(
        self,
        open_frames: OpenFrames,
        make_pipeline: Callable[[], Pipeline],
        prepare: Callable[[Session], Any] | None = None,
        on_shard_done: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[int, Any] | list[ShardResult]]:
        """What parallel.run_sharded yields, the shards run on the cluster."""
        futures = [
            self.client.submit(
                run_shard,
                me,
                self.n,
                open_frames,
                make_pipeline,
                prepare,
                key=f"{self.run}-shard-{me}",
                retries=0,
            )
            for me in range(self.n)
        ]
        done = [0]

        def finished(_future: Any) -> None:
            done[0] += 1
            if on_shard_done is not None:
                on_shard_done(done[0])

        for future in futures:
            future.add_done_callback(finished)
        parts = [_Parts(self.client, f, me, self.names) for me, f in enumerate(futures)]
        shards = [_Shard(conn=p, process=None) for p in parts]
        try:
            yield from _merge(shards, None)
            yield [s.result for s in shards if s.result is not None]
            self._note_restarts()
        finally:
            for p in parts:
                p.close()
            for future in futures:
                future.cancel()

    def _note_restarts(self) -> None:
        """Notes on the workers the scheduler removed while they ran (or held) a shard."""
        try:
            events = self.client.get_events("all")
        except Exception:  # noqa: BLE001 - the notes are extra; the output is complete
            return
        prefix = f"{self.run}-shard-"
        for _when, event in events:
            if not isinstance(event, dict) or event.get("action") != "remove-worker":
                continue
            for field_name, what in (
                ("processing-tasks", "while running"),
                ("lost-computed-tasks", "holding the result of"),
            ):
                shards = sorted(
                    {
                        int(str(key)[len(prefix) :].split("-")[0])
                        for key in event.get(field_name) or ()
                        if str(key).startswith(prefix)
                    }
                )
                for shard in shards:
                    self.notes.append(
                        f"worker {event.get('worker')} was lost {what} shard {shard + 1} of "
                        f"{self.n}: the shard was run again; only its complete run is in the output"
                    )


def check_inputs(paths: list[str]) -> None:
    """Standard input cannot be sent to a cluster."""
    if "-" in paths:
        raise InputError("--scheduler: the workers read the inputs themselves; - is not a file")
