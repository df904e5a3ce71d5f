# The two set-up commands of the README.
.PHONY: demo test bench

# Main job on embedded defaults: replay the real dataset through the pipeline on SQLite.
demo:
	DO_NOT_TRACK=1 bash scripts/bootstrap.sh
	DO_NOT_TRACK=1 .venv/bin/inferwatch demo

# Whole test suite; installs what it needs and starts a real Kafka broker and PostgreSQL.
test:
	DO_NOT_TRACK=1 bash scripts/bootstrap.sh --test
	DO_NOT_TRACK=1 .venv/bin/python -m pytest

# Benchmarks (speed and memory against Evidently, detection quality); prints tables. Takes minutes.
bench:
	DO_NOT_TRACK=1 bash scripts/bootstrap.sh
	DO_NOT_TRACK=1 .venv/bin/python -m bench
