"""One frozen, typed configuration object.

Precedence: explicit values (command-line flags) > ``KTF_*`` environment variables >
a TOML config file (``--config`` or ``KTF_CONFIG_FILE``) > defaults that work
against the local development broker. Values are validated here, at the edge, and
the librdkafka dictionaries are built in exactly one method, :meth:`Settings.librdkafka`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from framework.errors import ConfigError
from framework.kafka.logs import LIBRDKAFKA_LOG

Role = Literal["consumer", "producer", "admin"]
#: What a producer writes, which decides its ``linger.ms`` (Settings.*_linger_ms).
ProducerPurpose = Literal["outcomes", "subtasks", "submits"]
#: librdkafka's upper bound for linger.ms.
_MAX_LINGER_MS = 900_000.0

_SECRET_FIELDS = frozenset({"sasl_password", "ssl_key_password", "schema_registry_auth"})
_SECRET_KAFKA_KEYS = ("password", "secret", "token")
_ENV_PREFIX = "KTF_"


@dataclass(frozen=True)
class Settings:
    """Every tunable of a worker or client. Build with :meth:`load`."""

    # Connection
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "ktf"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = None

    # Consumer group
    group_id: str = "ktf-workers"
    group_instance_id: str | None = None
    group_protocol: str = "classic"
    assignment_strategy: str = "cooperative-sticky"
    session_timeout_ms: int = 45_000
    max_poll_interval_ms: int = 300_000
    auto_offset_reset: str = "earliest"

    # Fetching and flow control
    batch_size: int = 500
    poll_timeout: float = 0.05
    max_in_flight: int = 1_000
    partition_buffer_high: int = 2_000
    partition_buffer_low: int = 500
    max_buffered: int = 20_000
    fetch_max_bytes_per_partition: int = 1_048_576
    queued_max_kbytes: int = 16_384

    # Producing: linger.ms by what is produced. Waiting gathers larger batches (fewer
    # requests, better compression) but adds that wait to every record's latency when
    # traffic is light; under load librdkafka batches whatever queues while earlier
    # requests are in flight anyway. Trade-off and figures: docs/performance.md.
    #: replies, retry-tier records and dead letters written by a worker
    outcome_linger_ms: float = 0.0
    #: sub-tasks from ``ctx.submit`` (a second producer when it differs from the above)
    subtask_linger_ms: float = 0.0
    #: tasks written by the TaskClient (submit, call, submit_many) and the CLI
    submit_linger_ms: float = 0.0

    # Offsets, rebalances, shutdown
    commit_interval: float = 1.0
    revoke_timeout: float = 10.0
    drain_timeout: float = 30.0

    # Serde, handlers, topics
    schemas_dir: str = "schemas"
    #: Confluent-compatible schema registry, for handlers with wire_format="confluent"
    schema_registry_url: str | None = None
    schema_registry_auth: str | None = None
    handlers: tuple[str, ...] = ()
    topic_partitions: int = 6
    topic_replication: int = 1

    # Process model: the event loop, and worker processes per pod (N or "auto")
    loop: str = "uvloop"
    processes: str = "1"

    # Scheduling: the leader group's session timeout bounds a leader failover;
    # schedules: [[ktf.schedules]] tables of the config file (or JSON in KTF_SCHEDULES)
    leader_session_timeout_ms: int = 10_000
    schedules: tuple[Mapping[str, Any], ...] = ()

    # Observability
    metrics_port: int = 9100
    #: Address /metrics, /healthz and /readyz bind to (supervised children: loopback)
    metrics_host: str = "0.0.0.0"
    #: host name or IP others reach this worker's metrics port at (announced on
    #: ktf.workers for `ktf top --group`); default: this machine's name
    advertised_host: str | None = None
    #: the /metrics URL announced instead of http://<advertised_host>:<port>/metrics
    #: ("" announces none); the supervisor sets it for each of its worker processes
    advertised_metrics_url: str | None = None
    #: seconds between announcements on ktf.workers; 0 disables them
    announce_interval: float = 10.0
    stall_timeout: float = 30.0
    log_level: str = "INFO"
    log_format: str = "auto"

    # Escape hatch: extra librdkafka properties, e.g. {"fetch.wait.max.ms": "50"}
    kafka_overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._validate()

    # -- construction -------------------------------------------------------

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
    ) -> Settings:
        """Merge defaults, a config file, ``KTF_*`` variables and explicit overrides.

        ``overrides`` entries whose value is ``None`` are ignored, so argparse
        namespaces can be passed through unchanged.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        path = config_file or env.get(_ENV_PREFIX + "CONFIG_FILE")
        if path:
            for key, raw in _read_config_file(Path(path)).items():
                values[key] = raw
                sources[key] = f"config file {path}"
        names = {f.name for f in fields(cls)}
        for f in fields(cls):
            env_name = _ENV_PREFIX + f.name.upper()
            if env_name in env:
                values[f.name] = env[env_name]
                sources[f.name] = f"environment variable {env_name}"
        for key, value in (overrides or {}).items():
            if value is None or key not in names:
                continue
            values[key] = value
            sources[key] = "command line"
        converted: dict[str, Any] = {}
        hints = {f.name: f for f in fields(cls)}
        for key, raw in values.items():
            if key not in names:
                raise ConfigError(f"unknown setting {key!r} in {sources.get(key, 'configuration')}")
            converted[key] = _convert(hints[key], raw, sources.get(key, "configuration"))
        return cls(**converted)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- librdkafka ----------------------------------------------------------

    def librdkafka(self, role: Role, *, purpose: ProducerPurpose = "submits") -> dict[str, Any]:
        """The librdkafka configuration for a consumer, producer or admin client.

        ``purpose`` (producers only) picks the ``linger.ms`` of what it writes.
        This is the only place framework settings become librdkafka properties.
        """
        conf: dict[str, Any] = {
            # librdkafka's log lines through logging, rate-limited (framework.kafka.logs).
            "logger": LIBRDKAFKA_LOG,
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": f"{self.client_id}-{role}",
            "security.protocol": self.security_protocol,
        }
        for key, value in (
            ("sasl.mechanism", self.sasl_mechanism),
            ("sasl.username", self.sasl_username),
            ("sasl.password", self.sasl_password),
            ("ssl.ca.location", self.ssl_ca_location),
            ("ssl.certificate.location", self.ssl_certificate_location),
            ("ssl.key.location", self.ssl_key_location),
            ("ssl.key.password", self.ssl_key_password),
        ):
            if value is not None:
                conf[key] = value
        if role == "consumer":
            conf.update(
                {
                    "group.id": self.group_id,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": self.auto_offset_reset,
                    "enable.partition.eof": False,
                    # The fetch loop keeps polling while partitions are paused, so this
                    # only trips when the loop itself is stuck.
                    "max.poll.interval.ms": self.max_poll_interval_ms,
                    # Prefetch memory: at most queued.max.messages.kbytes in total and
                    # max.partition.fetch.bytes per partition (docs/performance.md).
                    "queued.max.messages.kbytes": self.queued_max_kbytes,
                    "max.partition.fetch.bytes": self.fetch_max_bytes_per_partition,
                    "fetch.wait.max.ms": 100,
                }
            )
            if self.group_protocol == "consumer":
                # KIP-848: assignment is computed by the broker; the classic
                # assignor and session settings do not apply.
                conf["group.protocol"] = "consumer"
            else:
                conf["partition.assignment.strategy"] = self.assignment_strategy
                conf["session.timeout.ms"] = self.session_timeout_ms
            if self.group_instance_id:
                conf["group.instance.id"] = self.group_instance_id
        elif role == "producer":
            conf.update(
                {
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": self.linger_ms(purpose),
                    "compression.type": "lz4",
                }
            )
        conf.update(self.kafka_overrides)
        return conf

    def linger_ms(self, purpose: ProducerPurpose) -> float:
        """``linger.ms`` of a producer that writes ``purpose`` records."""
        if purpose == "outcomes":
            return self.outcome_linger_ms
        if purpose == "subtasks":
            return self.subtask_linger_ms
        if purpose == "submits":
            return self.submit_linger_ms
        raise ConfigError(f"producer purpose {purpose!r} is not outcomes, subtasks or submits")

    # -- presentation --------------------------------------------------------

    def schema_registry(self) -> dict[str, str] | None:
        """Configuration for ``confluent_kafka.schema_registry.SchemaRegistryClient``."""
        if not self.schema_registry_url:
            return None
        conf = {"url": self.schema_registry_url}
        if self.schema_registry_auth:
            conf["basic.auth.user.info"] = self.schema_registry_auth
        return conf

    def masked(self) -> dict[str, Any]:
        """A dict of the settings with secrets replaced by ``***``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value is not None:
                value = "***"
            elif f.name == "kafka_overrides":
                value = {
                    k: ("***" if any(s in k for s in _SECRET_KAFKA_KEYS) else v)
                    for k, v in value.items()
                }
            out[f.name] = value
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.masked().items())
        return f"Settings({inner})"

    __str__ = __repr__

    # -- validation ----------------------------------------------------------

    def _validate(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ConfigError("bootstrap_servers must not be empty")
        positive = (
            "batch_size",
            "max_in_flight",
            "partition_buffer_high",
            "max_buffered",
            "session_timeout_ms",
            "leader_session_timeout_ms",
            "max_poll_interval_ms",
            "topic_partitions",
            "topic_replication",
            "queued_max_kbytes",
            "fetch_max_bytes_per_partition",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("poll_timeout", "commit_interval", "revoke_timeout", "drain_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {getattr(self, name)!r}")
        for name in ("outcome_linger_ms", "subtask_linger_ms", "submit_linger_ms"):
            value = getattr(self, name)
            if not 0 <= value <= _MAX_LINGER_MS:
                raise ConfigError(
                    f"{name} must be between 0 and {_MAX_LINGER_MS:.0f} ms, got {value!r}"
                )
        if not 0 <= self.partition_buffer_low < self.partition_buffer_high:
            raise ConfigError(
                "partition_buffer_low must be >= 0 and below partition_buffer_high "
                f"({self.partition_buffer_low!r} vs {self.partition_buffer_high!r})"
            )
        if self.group_protocol not in ("classic", "consumer"):
            raise ConfigError(
                f"group_protocol must be 'classic' or 'consumer', got {self.group_protocol!r}"
            )
        if self.assignment_strategy not in ("cooperative-sticky", "range", "roundrobin"):
            raise ConfigError(f"assignment_strategy {self.assignment_strategy!r} is not known")
        if self.auto_offset_reset not in ("earliest", "latest"):
            raise ConfigError(
                f"auto_offset_reset must be 'earliest' or 'latest', got {self.auto_offset_reset!r}"
            )
        if not 0 <= self.announce_interval <= 120:
            raise ConfigError(
                f"announce_interval must be 0 (off) to 120 seconds, got {self.announce_interval!r}"
            )
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be 0..65535, got {self.metrics_port!r}")
        if self.loop not in ("uvloop", "asyncio"):
            raise ConfigError(f"loop must be 'uvloop' or 'asyncio', got {self.loop!r}")
        if self.processes != "auto" and not (self.processes.isdigit() and int(self.processes) >= 1):
            raise ConfigError(
                f"processes must be a whole number >= 1 or 'auto', got {self.processes!r}"
            )
        if not self.metrics_host.strip():
            raise ConfigError("metrics_host must not be empty (0.0.0.0 serves every address)")
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigError(f"log_format must be auto, json or console, got {self.log_format!r}")
        if self.sasl_mechanism and not self.security_protocol.startswith("SASL"):
            raise ConfigError(
                "sasl_mechanism is set but security_protocol is "
                f"{self.security_protocol!r} (use SASL_SSL or SASL_PLAINTEXT)"
            )


def default_client_id() -> str:
    return f"ktf-{socket.gethostname()}-{os.getpid()}"


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: {exc.reason}") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    # Accept either top-level keys or a [ktf] table.
    section = data.get("ktf", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [ktf] must be a table")
    return {str(k).replace("-", "_"): v for k, v in section.items()}


def _convert(f: dataclasses.Field[Any], raw: Any, source: str) -> Any:
    kind = str(f.type)
    name = f.name
    try:
        if name == "kafka_overrides":
            if isinstance(raw, Mapping):
                return {str(k): str(v) for k, v in raw.items()}
            pairs = [p for p in str(raw).split(",") if p.strip()]
            out: dict[str, str] = {}
            for pair in pairs:
                key, sep, value = pair.partition("=")
                if not sep:
                    raise ValueError(f"expected key=value, got {pair!r}")
                out[key.strip()] = value.strip()
            return out
        if name == "schedules":
            return _schedule_entries(raw)
        if kind.startswith("tuple"):
            if isinstance(raw, list | tuple):
                return tuple(str(x) for x in raw)
            return tuple(p.strip() for p in str(raw).split(",") if p.strip())
        if kind == "int":
            if isinstance(raw, bool) or not _is_int(raw):
                raise ValueError("expected an integer")
            return int(raw)
        if kind == "float":
            try:
                return float(raw)
            except (TypeError, ValueError):
                raise ValueError("expected a number") from None
        if kind == "str | None":
            return None if raw in ("", None) else str(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} from {source}: {exc}, got {raw!r}") from exc


def _schedule_entries(raw: Any) -> tuple[Mapping[str, Any], ...]:
    """``[[ktf.schedules]]`` tables, or their JSON (a list of objects) from the environment."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else []
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected a JSON list of schedule objects ({exc.msg})") from None
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list | tuple) or not all(isinstance(e, Mapping) for e in raw):
        raise ValueError("expected a list of schedule tables")
    return tuple(dict(e) for e in raw)


def _is_int(raw: Any) -> bool:
    if isinstance(raw, int):
        return True
    try:
        int(str(raw))
    except ValueError:
        return False
    return True
