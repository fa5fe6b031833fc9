"""One bounded connection check before a secured client starts its real work.

librdkafka treats a wrong SASL password or an untrusted broker certificate like
any other connection problem: it reconnects with backoff forever, and each
attempt is an error callback and a log line. A worker or a command would then
wait for a timeout and report "no answer". :func:`check_connection` asks for
metadata once (bounded), watches the error callbacks for authentication and TLS
failures, and turns the first one into a single :class:`KafkaError` line that
says what to fix. It runs only for SASL and SSL security protocols: a plaintext
connection has neither failure, and an unreachable plaintext broker keeps the
behaviour it had (workers start and wait for it).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError as _RawError
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from framework.config import Settings
from framework.errors import KafkaError

__all__ = ["check_connection"]

# The check reports the failure itself: librdkafka's own lines would repeat it.
_QUIET = logging.getLogger("framework.kafka.preflight.librdkafka")
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())


def check_connection(settings: Settings, timeout: float = 15.0) -> None:
    """Raise one clear :class:`KafkaError` if credentials or TLS trust are wrong."""
    protocol = settings.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return
    errors: list[Any] = []
    conf = settings.librdkafka("admin")
    conf["logger"] = _QUIET
    conf["error_cb"] = errors.append
    conf["client.id"] = f"{settings.client_id}-preflight"
    try:
        admin = AdminClient(conf)
    except KafkaException as exc:
        raise KafkaError(f"invalid {protocol} client configuration: {exc}") from exc
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            if md.brokers:
                return
        except KafkaException as exc:
            last = exc.args[0] if exc.args else exc
        admin.poll(0)  # error callbacks are served by poll()
        for err in errors:
            problem = _diagnose(settings, err)
            if problem is not None:
                raise KafkaError(problem)
        if errors:
            last = errors[-1]
    raise KafkaError(
        f"cannot reach {settings.bootstrap_servers} over {protocol} within {timeout:g}s"
        + (f": {_text(last)}" if last is not None else "")
    )


def _text(err: Any) -> str:
    text = err.str() if hasattr(err, "str") else str(err)
    return str(text)


def _diagnose(settings: Settings, err: Any) -> str | None:
    code = err.code() if hasattr(err, "code") else None
    text = _text(err)
    where = settings.bootstrap_servers
    if code == _RawError._AUTHENTICATION or "SASL authentication" in text:
        return (
            f"SASL authentication to {where} failed for user {settings.sasl_username!r} "
            f"({settings.sasl_mechanism}): the broker rejected the credentials; check "
            "sasl_username and sasl_password (KTF_SASL_USERNAME, KTF_SASL_PASSWORD)"
        )
    if code == _RawError._SSL or "SSL handshake failed" in text or "certificate verify" in text:
        if "certificate verify failed" in text or "could not be verified" in text:
            return (
                f"TLS handshake with {where} failed: the broker's certificate is not trusted "
                f"by ssl_ca_location={settings.ssl_ca_location or '(system CAs)'} "
                "(KTF_SSL_CA_LOCATION): certificate verify failed"
            )
        detail = text.split("SSL handshake failed:", 1)[-1].split("(after", 1)[0].strip()
        return f"TLS handshake with {where} failed: {detail}"
    return None
