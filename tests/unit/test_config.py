"""Settings: precedence, validation at the edge, one librdkafka builder, masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework import ConfigError, Settings


def test_flags_override_environment_which_overrides_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "ktf.toml"
    cfg.write_text('[ktf]\ngroup_id = "from-file"\nbatch_size = 7\nclient_id = "file-client"\n')
    env = {"KTF_GROUP_ID": "from-env", "KTF_BATCH_SIZE": "9"}
    s = Settings.load({"group_id": "from-flag", "batch_size": None}, env=env, config_file=cfg)
    assert s.group_id == "from-flag"
    assert s.batch_size == 9
    assert s.client_id == "file-client"


def test_defaults_point_at_the_local_broker() -> None:
    s = Settings.load(env={})
    assert s.bootstrap_servers == "127.0.0.1:9092"


def test_bad_environment_value_names_the_setting_and_its_source() -> None:
    with pytest.raises(ConfigError, match=r"batch_size from environment variable KTF_BATCH_SIZE"):
        Settings.load(env={"KTF_BATCH_SIZE": "lots"})


def test_unknown_config_file_key_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "ktf.toml"
    cfg.write_text("[ktf]\nbatchsize = 7\n")
    with pytest.raises(ConfigError, match="unknown setting 'batchsize'"):
        Settings.load(env={}, config_file=cfg)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_size", 0, "batch_size must be > 0"),
        ("partition_buffer_low", 5000, "partition_buffer_low"),
        ("group_protocol", "eager", "group_protocol"),
        ("metrics_port", 70000, "metrics_port"),
        ("drain_timeout", 0, "drain_timeout"),
    ],
)
def test_invalid_values_are_refused_at_construction(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_consumer_config_disables_auto_commit_and_sets_the_assignor() -> None:
    conf = Settings(group_instance_id="pod-0").librdkafka("consumer")
    assert conf["enable.auto.commit"] is False
    assert conf["enable.auto.offset.store"] is False
    assert conf["partition.assignment.strategy"] == "cooperative-sticky"
    assert conf["group.instance.id"] == "pod-0"


def test_kip848_protocol_drops_classic_only_properties() -> None:
    conf = Settings(group_protocol="consumer").librdkafka("consumer")
    assert conf["group.protocol"] == "consumer"
    assert "partition.assignment.strategy" not in conf
    assert "session.timeout.ms" not in conf


def test_producer_is_idempotent_and_overrides_apply_last() -> None:
    s = Settings(kafka_overrides={"linger.ms": "50"})
    conf = s.librdkafka("producer")
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["linger.ms"] == "50"


def test_secrets_are_masked_when_printed() -> None:
    s = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password="hunter2",
        kafka_overrides={"sasl.oauthbearer.client.secret": "s3cr3t"},
    )
    text = repr(s)
    assert "hunter2" not in text and "s3cr3t" not in text
    assert "svc" in text
    assert s.librdkafka("admin")["sasl.password"] == "hunter2"


def test_sasl_mechanism_requires_a_sasl_protocol() -> None:
    with pytest.raises(ConfigError, match="security_protocol"):
        Settings(sasl_mechanism="PLAIN")


def test_kafka_overrides_parse_from_environment() -> None:
    s = Settings.load(env={"KTF_KAFKA_OVERRIDES": "fetch.wait.max.ms=50, linger.ms=2"})
    assert s.kafka_overrides == {"fetch.wait.max.ms": "50", "linger.ms": "2"}


def test_each_producer_purpose_gets_its_own_linger() -> None:
    s = Settings.load(
        env={
            "KTF_OUTCOME_LINGER_MS": "0",
            "KTF_SUBTASK_LINGER_MS": "20",
            "KTF_SUBMIT_LINGER_MS": "2.5",
        }
    )
    assert s.librdkafka("producer", purpose="outcomes")["linger.ms"] == 0.0
    assert s.librdkafka("producer", purpose="subtasks")["linger.ms"] == 20.0
    assert s.librdkafka("producer", purpose="submits")["linger.ms"] == 2.5
    # A producer without a stated purpose writes tasks.
    assert s.librdkafka("producer")["linger.ms"] == 2.5
    # The escape hatch still wins.
    over = s.replace(kafka_overrides={"linger.ms": "7"})
    assert over.librdkafka("producer", purpose="outcomes")["linger.ms"] == "7"


@pytest.mark.parametrize("value", [-1.0, 900_001.0])
def test_linger_out_of_librdkafka_range_is_rejected_naming_the_field(value: float) -> None:
    with pytest.raises(ConfigError, match="subtask_linger_ms"):
        Settings(subtask_linger_ms=value)
