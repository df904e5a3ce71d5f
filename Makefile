# The two set-up commands of the README.
.PHONY: demo test

# Main job on embedded defaults: replay the real dataset through the pipeline on SQLite.
demo:
	DO_NOT_TRACK=1 bash scripts/bootstrap.sh
	DO_NOT_TRACK=1 .venv/bin/inferwatch demo

# Whole test suite; installs what it needs and starts a real Kafka broker and PostgreSQL.
test:
	DO_NOT_TRACK=1 bash scripts/bootstrap.sh --test
	DO_NOT_TRACK=1 .venv/bin/python -m pytest
