"""The consumer options inferwatch sets beyond kafka-python's defaults."""

import pytest
from kafka import KafkaConsumer, KafkaProducer

from inferwatch.config import CONSUMER_DEFAULTS, load_config


def test_consumer_reads_large_fetches_unless_client_options_say_otherwise(clean_env):
    k = load_config(None).kafka
    assert k.max_poll_records == 20_000
    assert k.consumer_config() == {"max_partition_fetch_bytes": 8 * 1024 * 1024, "security_protocol": "PLAINTEXT"}
    # the dead-letter producer's options are untouched
    assert k.client_config() == {"security_protocol": "PLAINTEXT"}
    k = load_config(None, kafka={"client_options": {"max_partition_fetch_bytes": 1 << 20}}).kafka
    assert k.consumer_config()["max_partition_fetch_bytes"] == 1 << 20
    # every default is a consumer option (the producer ignores it)
    assert set(CONSUMER_DEFAULTS) <= set(KafkaConsumer.DEFAULT_CONFIG) - set(KafkaProducer.DEFAULT_CONFIG)
