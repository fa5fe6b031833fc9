"""Quix Streams: an Application, a StreamingDataFrame, its own fastavro Avro deserializer.

Quix runs one record at a time on one thread, so the sleep case is a blocking
``time.sleep`` per record (there is no concurrency option to set).
"""

from __future__ import annotations

import time
from typing import Any

from _common import BOOTSTRAP, GROUP, SCHEMA, SLEEP, TOPIC, WORKLOAD, hit
from quixstreams import Application
from quixstreams.models.serializers.avro import AvroDeserializer


def noop(value: Any) -> None:
    hit()


def sleep(value: Any) -> None:
    time.sleep(SLEEP)
    hit()


def main() -> None:
    app = Application(
        broker_address=BOOTSTRAP,
        consumer_group=GROUP,
        auto_offset_reset="earliest",
        loglevel="WARNING",
    )
    topic = app.topic(TOPIC, value_deserializer=AvroDeserializer(schema=SCHEMA))
    sdf = app.dataframe(topic)
    sdf = sdf.update(noop if WORKLOAD == "noop" else sleep)
    app.run()


if __name__ == "__main__":
    main()
