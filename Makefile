# The two commands of the README's quick start.
.PHONY: run test lint bench

run:  ## install everything and serve http://127.0.0.1:8000 on the embedded defaults
	scripts/run.sh

test:  ## install everything and run the whole test suite (JS, SQLite, MariaDB + Redis)
	scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench:  ## the chat load generator (full matrix, a few minutes) and the protocol benchmark
	scripts/setup.sh dev
	.venv/bin/python bench/chat_bench.py
	node bench/crypto_bench.mjs
