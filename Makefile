# sensorstack: set-up, the local lab, and the test tiers. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
export PY_COLORS ?= 0
export ANSIBLE_FORCE_COLOR ?= 0
export NO_COLOR ?= 1
# What every test tier needs first; `make test` sets it empty for the tiers it runs after its own setup.
TIER_SETUP ?= setup
# The integration tier's files run on this many pytest-xdist workers: most of their time waits on containers.
INTEGRATION_WORKERS ?= 2

MOLECULE_SCENARIOS := $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

.PHONY: help setup host venv collections images lab-up lab-down lab-status deploy \
        bundle cluster vm test test-mitogen lint unit integration molecule $(addprefix molecule-,$(MOLECULE_SCENARIOS)) \
        telegraf bench bench-bundle bench-influxdb bench-mosquitto bench-pipeline bench-cli bench-rerun bench-cluster clean wheelhouse

help: ## List the targets
	@grep -hE '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: host venv collections images telegraf bundle wheelhouse ## Everything the lab and the tests need (packages, dockerd, venv, collections, images, Telegraf, the bundle, the wheelhouse)

host: ## Debian packages and a running Docker Engine (scripts/bootstrap-host)
	scripts/bootstrap-host

$(BIN)/ansible-playbook: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[test,mitogen]'
	touch $@

venv: $(BIN)/ansible-playbook ## The Python virtualenv with Ansible, molecule and the test tools

collections: venv ## The pinned collections, from the PyPI ansible bundle (no Galaxy needed)
	$(BIN)/python scripts/install-collections

telegraf: ## The Telegraf the lab and tests run (scripts/build-telegraf: pinned custom build, cached in ~/.cache/sensorstack/telegraf)
	scripts/build-telegraf

images: venv ## The lab base images (debootstrap; rebuilt only when their recipe changes)
	$(BIN)/python -m sensorstack.lab images

wheelhouse: venv ## The wheels an installed sensorstack needs, for the offline wheel test (cached outside the checkout)
	$(BIN)/python scripts/fill-wheelhouse

bundle: venv telegraf ## The air-gapped bundle of the pinned versions, built from source (cached outside the checkout)
	$(BIN)/sensorstack bundle build --from source
	$(BIN)/sensorstack bundle verify

lab-up: setup ## Start the local lab (inventories/local)
	$(BIN)/sensorstack lab up

lab-down: ## Remove the local lab's containers
	$(BIN)/sensorstack lab down

lab-status: ## List the local lab's containers
	$(BIN)/sensorstack lab status

deploy: lab-up ## The main job: sensorstack deploy (site.yml) against the local lab
	$(BIN)/sensorstack deploy

test: setup ## The whole suite: lint, unit, then the cluster tier beside integration (lab) and molecule; the VM tier beside all
	scripts/test-suite

test-mitogen: setup ## The whole suite with every Ansible run on the opt-in Mitogen strategy (docs/mitogen.md)
	eval "$$($(BIN)/python -m sensorstack.mitogen_strategy)" && SENSORSTACK_MITOGEN=1 scripts/test-suite

lint: venv collections ## ruff, yamllint, ansible-lint (production profile), site.yml syntax check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-playbook site.yml --syntax-check
	$(BIN)/ansible-lint
	vagrant validate --ignore-provider

unit: venv collections ## Pure-function tests, seconds (two processes)
	$(BIN)/pytest -n 2 tests/unit

integration: $(TIER_SETUP) ## Tests against real containers and servers (INTEGRATION_WORKERS files at a time)
	$(BIN)/pytest -n $(INTEGRATION_WORKERS) --dist loadfile --durations=25 tests/integration

cluster: $(TIER_SETUP) ## Cluster tier: kubeadm on lab nodes, installed from the served bundle
	$(BIN)/pytest --durations=0 --durations-min=20 tests/cluster

vm: $(TIER_SETUP) ## VM tier: the common role on a qemu VM (kernel modules, live sysctls, swap; 10-15 min under TCG)
	$(BIN)/pytest --durations=10 -m vm tests/vm

molecule: $(addprefix molecule-,$(MOLECULE_SCENARIOS)) ## Every molecule scenario

# Each scenario's output is also kept in .cache/molecule/NAME.log: scripts/test-suite repeats a failed one's end.
# Always on Ansible's strategy, also under make test-mitogen: the docker driver's create and destroy playbooks run
# community.docker modules as async jobs, which never finish under Mitogen 0.3.54 (docs/mitogen.md).
$(addprefix molecule-,$(MOLECULE_SCENARIOS)): molecule-%: $(TIER_SETUP)
	@mkdir -p .cache/molecule
	set -o pipefail; env -u ANSIBLE_STRATEGY -u ANSIBLE_STRATEGY_PLUGINS $(BIN)/molecule test -s $* 2>&1 | tee .cache/molecule/$*.log

BENCHMARKS := bench-influxdb bench-mosquitto bench-pipeline bench-cli bench-rerun bench-bundle bench-cluster

bench: setup ## Every benchmark (slow), then one summary line each; JSON reports in benchmarks/results/
	@status=0; for target in $(BENCHMARKS); do $(MAKE) --no-print-directory $$target || status=1; done; \
	echo "--- benchmark summaries ---"; $(BIN)/python benchmarks/record.py; exit $$status

bench-influxdb: setup ## One-call InfluxDB schema vs 50 community.general tasks
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[bench]'
	$(BIN)/python benchmarks/influxdb_schema.py

bench-mosquitto: setup ## 500 MQTT users: one users-list task vs one task per user
	$(BIN)/python benchmarks/mosquitto_users.py

bench-pipeline: setup ## Data path on one host: messages/s published vs points/s stored
	$(BIN)/python benchmarks/pipeline_throughput.py

bench-rerun: $(TIER_SETUP) ## The main job on a fresh built-in lab: no-op rerun vs first run, Ansible's strategy and Mitogen's (about 20 min)
	$(BIN)/python benchmarks/lab_rerun.py

bench-bundle: setup ## Warm bundle build and verify, the cluster lab's up and down (--cold: empty caches)
	$(BIN)/python benchmarks/bundle_lab.py

bench-cli: setup ## sensorstack vs ansible-playbook; rerun vs first converge; 4 hosts vs 1
	$(BIN)/python benchmarks/cli_overhead.py

bench-cluster: $(TIER_SETUP) ## Started nodes to a Ready cluster with Calico: site.yml, and on Mitogen, vs the same commands by hand (15-25 min)
	$(BIN)/python benchmarks/cluster_bootstrap.py --mitogen

clean: lab-down ## Remove the lab, caches and the virtualenv
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
