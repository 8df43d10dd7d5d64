# The README's two commands:  `make book`  and  `make test`.
# Each sets up what it needs (scripts/bootstrap.sh is idempotent).
PROFILE ?= quick
VENV ?= .venv
# A local folder holding the data files named in data/manifest.toml, searched before the
# internet. On the project's machines the shared folder sits beside the checkout.
ifeq ($(MORALKIT_DATA_MIRROR),)
ifneq ($(wildcard ../shared/data/MANIFEST.md),)
export MORALKIT_DATA_MIRROR := $(abspath ../shared/data)
endif
endif

.PHONY: setup book test rehearsal lint benchmark workflow workflow-dry-run clean
setup:
	@bash scripts/bootstrap.sh
	@$(VENV)/bin/moralkit examples examples >/dev/null

book: setup
	$(VENV)/bin/moralkit book --profile $(PROFILE)

test: setup
	$(VENV)/bin/python -m pytest -q

# The dress rehearsal of the paper profile alone (tests/test_rehearsal.py, about 8 min on 2 idle
# cores from an empty cache): every chapter through the workflow on tiny twins of the 23 models.
# `make test` runs it too (CI: the suite with it about 13 min, within the 25-minute budget).
rehearsal: setup
	$(VENV)/bin/python -m pytest -q -m rehearsal tests/test_rehearsal.py

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

benchmark: setup
	$(VENV)/bin/python benchmarks/extraction.py
	$(VENV)/bin/python benchmarks/sae_training.py

# The same chapters as `make book`, as a Snakemake workflow (jobs per model, layer and chapter;
# see workflow/README.md). On a SLURM cluster: snakemake --profile workflow/profiles/slurm ...
workflow: setup
	$(VENV)/bin/snakemake --snakefile workflow/Snakefile --profile workflow/profiles/local --config profile=$(PROFILE)

workflow-dry-run: setup
	$(VENV)/bin/snakemake --snakefile workflow/Snakefile --profile workflow/profiles/slurm --config profile=paper -n

clean:
	rm -rf _build book/_executed outputs
