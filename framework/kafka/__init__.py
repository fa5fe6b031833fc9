"""Thin wrappers over confluent-kafka: the only place the framework touches it."""
