"""One ``audit_log`` row per back-office call of the orders service (see :mod:`switch.store.audit`).

:func:`audited` wraps a service method; the note it opens rides in a context
variable into the shielded exchange the call starts, which writes the row in
the same batch as the operation's result (``Engine.perform``). A call that
made no operation (refused before) is written here, before the caller gets
its answer or error.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar, cast

from switch.orders.errors import OrderError
from switch.orders.model import Order
from switch.store.audit import SOURCE, AuditLog, AuditNote
from switch.store.projects import Project

__all__ = ["audited", "current_note"]


# The audit note of the back-office call running in this task (and in the
# shielded exchange it starts): set by ``audited``, filled by ``Engine.perform``.
_NOTE: contextvars.ContextVar[AuditNote | None] = contextvars.ContextVar("isoswitch_audit_note", default=None)

_Call = TypeVar("_Call", bound=Callable[..., Coroutine[Any, Any, Order]])


class _Engine(Protocol):
    audit: AuditLog | None

    async def record(self, entry: Any) -> None: ...


class _Audited(Protocol):
    @property
    def engine(self) -> _Engine: ...


def audited(action: str) -> Callable[[_Call], _Call]:
    """One ``audit_log`` row per call of the decorated method (see :mod:`switch.store.audit`).

    Written with the operation's result when the call made one (:meth:`Engine.perform`),
    else here, before the caller gets its answer or error.
    """

    def wrap(method: _Call) -> _Call:
        @functools.wraps(method)
        async def call(self: _Audited, project: Project, order_id: str | None, *args: Any, **kw: Any) -> Order:
            engine = self.engine
            if engine.audit is None:
                return await method(self, project, order_id, *args, **kw)
            note = AuditNote(action, project.id, project.login, order_id, SOURCE.get())
            token = _NOTE.set(note)
            result, message = "success", None
            try:
                return await method(self, project, order_id, *args, **kw)
            except OrderError as e:
                result, message = e.failure_type, e.message
                raise
            except asyncio.CancelledError:
                # Nothing to record unless an operation started, and that one's exchange records it.
                note.written = True
                raise
            except Exception:
                result, message = "error", "Internal error"
                raise
            finally:
                _NOTE.reset(token)
                if not note.written:
                    note.written = True
                    await engine.record(note.entry(result, message))

        return cast(_Call, call)

    return wrap


def current_note() -> AuditNote | None:
    """The note of the audited call running in this task, if any."""
    return _NOTE.get()
