"""Kafka connection security: the ``kafka`` section's security keys are checked at start-up
(each error names its key), reach kafka-python's consumer and producer, keep the password out
of every log and repr, and work against a real broker with a SASL_PLAINTEXT listener
(mechanism PLAIN): the right password consumes, a wrong one stops start-up naming the keys."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from kafka import KafkaConsumer, KafkaProducer

import kafka_local
from conftest import start_or_bail
from inferwatch.config import SECURITY_KEYS, ConfigError, load_config
from inferwatch.runner import connect_kafka
from inferwatch.store import Store

from e2e import REPO, Service, create_topic, free_port, produce, wait_for, write_config

USER, PASSWORD = "inferwatch", "s3cret-Pa55"
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000


def sasl(**extra) -> dict:
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": USER, **extra}


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("kafka, message", [
    ({"security_protocol": "SASL_SSL"}, "kafka: kafka.sasl_mechanism is required with kafka.security_protocol SASL_SSL"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512"},
     "kafka.sasl_plain_username is required with kafka.sasl_mechanism SCRAM-SHA-512"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u"},
     "kafka.sasl_plain_password (or kafka.sasl_plain_password_file) is required"),
    ({"sasl_mechanism": "PLAIN"}, "kafka.sasl_mechanism needs kafka.security_protocol SASL_PLAINTEXT or SASL_SSL "
                                  "(it is PLAINTEXT)"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
      "sasl_plain_password": "a", "sasl_plain_password_file": "/etc/hostname"}, "are both set; keep one"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}, "kafka.sasl_mechanism: Input should be"),
    ({"security_protocol": "TLS"}, "kafka.security_protocol: Input should be"),
    ({"ssl_cafile": "/no/such/ca.pem"}, "kafka.ssl_cafile: Path does not point to a file"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
      "sasl_plain_password_file": "/no/such/file"}, "kafka.sasl_plain_password_file: Path does not point to a file"),
    ({"client_options": {"sasl_plain_password": "x"}},
     "kafka.client_options: Value error, set kafka.sasl_plain_password instead"),
    ({"outage_retry_initial_seconds": 5, "outage_retry_max_seconds": 1},
     "kafka.outage_retry_max_seconds must not be below kafka.outage_retry_initial_seconds"),
])
def test_bad_security_settings_fail_at_start_naming_the_key(kafka, message, clean_env):
    with pytest.raises(ConfigError) as err:
        load_config(None, kafka=kafka)
    assert message in str(err.value)


def test_ssl_file_needs_an_ssl_protocol(tmp_path, clean_env):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"kafka.ssl_cafile needs kafka.security_protocol SSL or SASL_SSL"):
        load_config(None, kafka={"ssl_cafile": str(ca)})


def test_security_options_for_both_clients(tmp_path, clean_env):
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    for f in (ca, cert, key):
        f.write_text("pem\n")
    k = load_config(None, kafka=dict(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                                     sasl_plain_username=USER, sasl_plain_password=PASSWORD, ssl_cafile=str(ca),
                                     ssl_certfile=str(cert), ssl_keyfile=str(key), ssl_check_hostname=False,
                                     client_options={"request_timeout_ms": 40000})).kafka
    assert k.client_config() == {
        "request_timeout_ms": 40000, "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": USER, "sasl_plain_password": PASSWORD, "ssl_check_hostname": False,
        "ssl_cafile": str(ca), "ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    # every security key is an option of both kafka-python clients, so both receive it
    assert set(SECURITY_KEYS) <= set(KafkaConsumer.DEFAULT_CONFIG) & set(KafkaProducer.DEFAULT_CONFIG)
    # the password shows nowhere but in the options handed to the clients
    assert PASSWORD not in repr(k) and PASSWORD not in str(k.model_dump()) and PASSWORD not in k.model_dump_json()


def test_password_from_the_environment_or_a_file(tmp_path, clean_env):
    clean_env.setenv("INFERWATCH_KAFKA__SASL_PLAIN_PASSWORD", PASSWORD)
    k = load_config(None, kafka=sasl()).kafka
    assert k.client_config()["sasl_plain_password"] == PASSWORD
    clean_env.delenv("INFERWATCH_KAFKA__SASL_PLAIN_PASSWORD")
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")  # as `echo` or a mounted secret writes it
    k = load_config(None, kafka=sasl(sasl_plain_password_file=str(secret))).kafka
    assert k.client_config()["sasl_plain_password"] == PASSWORD


def test_plaintext_defaults_add_only_the_protocol(clean_env):
    assert load_config(None).kafka.client_config() == {"security_protocol": "PLAINTEXT"}


# --------------------------------------------------------------------------- a real SASL broker
@pytest.fixture(scope="module")
def sasl_broker():
    """A broker of this module with a SASL_PLAINTEXT listener (PLAIN) accepting one user."""
    broker = start_or_bail(kafka_local.KafkaBroker(sasl_plain_users={USER: PASSWORD}, start_timeout=60),
                           "Kafka broker with a SASL listener")
    yield broker
    broker.cleanup()


@pytest.mark.kafka
def test_security_keys_reach_the_consumer_and_the_producer(sasl_broker, clean_env):
    settings = load_config(None, kafka={"bootstrap_servers": sasl_broker.sasl_bootstrap_servers,
                                        "topics": [f"cfg-{uuid.uuid4().hex[:8]}"],
                                        **sasl(sasl_plain_password=PASSWORD)})
    source, dead_letter = connect_kafka(settings, lambda: {})
    try:
        for config in (source.consumer.config, dead_letter.producer.config):
            assert (config["security_protocol"], config["sasl_mechanism"], config["sasl_plain_username"],
                    config["sasl_plain_password"]) == ("SASL_PLAINTEXT", "PLAIN", USER, PASSWORD)
    finally:
        source.close()
        dead_letter.close()


@pytest.mark.kafka
def test_inferwatch_run_over_sasl_consumes_and_dead_letters(tmp_path, sasl_broker):
    plain = sasl_broker.bootstrap_servers  # the test itself produces and reads on the PLAINTEXT listener
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    create_topic(plain, topic, 1)
    recs = [{"model": "m", "model_version": "1", "timestamp": T0 + i * 1000, "request_id": f"r{i}",
             "features": {"x": i % 13}, "predictions": {"p": 0.5}} for i in range(3000)]
    produce(plain, topic, [json.dumps(r).encode() for r in recs] + [b"[1, 2, 3]"])
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")
    db_url = f"sqlite:///{tmp_path / 'sasl.db'}"
    cfg = write_config(tmp_path / "inferwatch.yaml", database_url=db_url,
                       kafka={"bootstrap_servers": sasl_broker.sasl_bootstrap_servers, "topics": [topic],
                              "group_id": f"g-{topic}", "dead_letter_topic": f"{topic}.dead-letter",
                              "poll_timeout_ms": 200, **sasl(sasl_plain_password_file=str(secret))},
                       window={"length_seconds": 3600, "idle_close_seconds": 2}, metrics={"port": free_port()})
    store = Store(db_url)
    store.create_schema()
    service = Service(cfg, tmp_path / "service.log").start()
    try:
        wait_for(lambda: sum(store.list_windows()["record_count"]) >= len(recs) or not service.running(), 60,
                 "every record in a closed window")
        assert service.running(), service.log()
    finally:
        code = service.stop()
    assert code == 0, service.log()
    assert Counter({int(r.window_start_ms): int(r.record_count) for r in store.list_windows().itertuples()}) == \
        Counter((r["timestamp"] - T0) // HOUR * HOUR + T0 for r in recs)
    consumer = KafkaConsumer(f"{topic}.dead-letter", bootstrap_servers=plain, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    assert [m.value for m in consumer] == [b"[1, 2, 3]"]
    consumer.close()
    assert PASSWORD not in service.log()
    store.close()


@pytest.mark.kafka
def test_a_wrong_password_stops_start_up_naming_the_keys(tmp_path, sasl_broker):
    cfg = write_config(tmp_path / "inferwatch.yaml", database_url=f"sqlite:///{tmp_path / 'x.db'}",
                       kafka={"bootstrap_servers": sasl_broker.sasl_bootstrap_servers, "topics": ["t"], **sasl(),
                              # the client retries until this deadline before giving up
                              "client_options": {"bootstrap_timeout_ms": 4000}},
                       metrics={"port": free_port()})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("INFERWATCH_")},
           "INFERWATCH_KAFKA__SASL_PLAIN_PASSWORD": "not-the-password"}
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "run", "--config", str(cfg)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    assert done.returncode == 3, out
    line = " ".join(out.split())
    # kafka-python sees either the broker's error response or only the connection it closes next
    assert re.search(rf"error: kafka.sasl_plain_username/kafka.sasl_plain_password: the broker at "
                     rf"{sasl_broker.sasl_bootstrap_servers} (refused the credentials|closed every connection while "
                     rf"authenticating) (of )?user '{USER}' \(PLAIN\)", line), out
    assert "not-the-password" not in out
