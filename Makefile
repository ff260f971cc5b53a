# Two entry points (see README): `make run` and `make test`. Both set up .venv first.
.PHONY: setup run test lint bench package selftest

setup:
	./scripts/setup_env.sh

run: setup
	.venv/bin/metainspect

test: setup
	./scripts/test.sh

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports

# The installer bundle (dist/metainspect/, + a tarball on Linux), smoke-tested frozen; see docs/install.md.
package:
	EXTRAS=dev,package ./scripts/setup_env.sh && ./packaging/build.sh

# The installation check from source (the bundle runs the same: dist/metainspect/metainspect --self-test).
selftest: setup
	.venv/bin/metainspect --self-test
