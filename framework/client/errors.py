"""Typed errors of ``TaskClient.call``: what a caller can catch and what they carry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from framework.errors import FrameworkError, TaskCancelled, TaskExpired

if TYPE_CHECKING:
    from framework.client.replies import Reply


class CallError(FrameworkError):
    """Base of every outcome of :meth:`TaskClient.call` other than an ``ok`` reply.

    ``task_id`` names the task; ``reply`` is the reply record when one arrived.
    """

    def __init__(self, message: str, *, task_id: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.reply = reply


class CallTimeout(CallError):
    """No reply arrived within the call's timeout (the task may still run later,
    unless its deadline, by default the same instant, stops it)."""

    retriable = True


class TaskFailed(CallError):
    """The worker replied ``error``: the handler raised, or the task was rejected.

    ``error_type`` and ``error_message`` come from the reply's ``ktf-error-type`` and
    ``ktf-error-message`` headers; ``error_stack`` from ``ktf-error-stack``.
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        reply: Reply | None = None,
        error_type: str = "",
        error_message: str = "",
        error_stack: str = "",
    ) -> None:
        super().__init__(message, task_id=task_id, reply=reply)
        self.error_type = error_type
        self.error_message = error_message
        self.error_stack = error_stack


class CallExpired(CallError, TaskExpired):
    """The worker replied ``expired``: the task's deadline passed before or while it ran.

    Also a :class:`framework.TaskExpired`, so either can be caught.
    """


class CallCancelled(CallError, TaskCancelled):
    """The worker replied ``cancelled`` (see ``TaskClient.cancel``).

    Also a :class:`framework.TaskCancelled`.
    """
