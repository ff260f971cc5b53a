# Two entry points (see README): `make run` and `make test`. Both set up .venv first.
.PHONY: setup run test lint bench package

setup:
	./scripts/setup_env.sh

run: setup
	.venv/bin/metainspect

test: setup
	./scripts/test.sh

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports

package:
	EXTRAS=dev,package ./scripts/setup_env.sh && ./packaging/build.sh
