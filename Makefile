# kvfleet: common tasks. `make` alone lists them.
GO       ?= go
BIN      := bin
BINARIES := kvfleet-api kvfleet-consumer kvfleet-local

.DEFAULT_GOAL := help
.PHONY: help build scaler test test-short e2e lint bench fuzz up down logs run-local clean check-repo

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the binaries into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

scaler: ## build the autoscaler that ./monitor-scale.sh runs (bin/kvfleet-scaler)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/kvfleet-scaler

test: ## the README's test command: unit and integration tests (-race), then the e2e suite on a Compose fleet
	scripts/install-test-deps.sh
	$(GO) vet ./...
	$(GO) vet -tags e2e ./internal/e2e/
	$(GO) test -race -count=1 -timeout 20m ./...
	scripts/e2e.sh

e2e: ## bring up a separate fleet (project kvfleet-e2e, port 18000), run the e2e suite, tear it down
	scripts/e2e.sh

# The chaos suite needs a running fleet; it touches only the containers of
# KVFLEET_PROJECT (kvfleet) and sends traffic only to 127.0.0.1.
CHAOS_FLAGS ?=

.PHONY: chaos
chaos: ## faults one at a time under load on the running fleet (./start.sh first); CHAOS_FLAGS=--quick: CI's short schedule
	$(GO) run ./cmd/kvfleet-chaos $(CHAOS_FLAGS)

# The hostile-client suite needs a running fleet too: it attacks it through
# 127.0.0.1 (large escape-heavy writes behind paused consumers, a flood to
# the queue's byte bound, bodies at the limit, unknown and duplicate
# members, huge queries and headers, slowloris) beside a well-behaved client
# and pauses only the project's consumers. HOSTILE_FLAGS=-quick: CI's schedule.
HOSTILE_FLAGS ?=

.PHONY: hostile
hostile: ## attacks the running fleet as a hostile client would, checks it holds (./start.sh first); HOSTILE_FLAGS=-quick: ~4 min
	$(GO) run ./cmd/kvfleet-hostile $(HOSTILE_FLAGS)

# The autoscaling test brings up its own fleet (project kvfleet-autoscale,
# port 18200), runs the scaler beside it under idle, saturating and idle
# traffic through 127.0.0.1 and tears it down; it changes only that
# project's replicas. AUTOSCALE_FLAGS=--quick is CI's short schedule.
AUTOSCALE_FLAGS ?=

.PHONY: autoscale-test
autoscale-test: ## the scaler's live test on a fleet of its own (port 18200); AUTOSCALE_FLAGS=--quick: ~8 min with the fleet's start (full: ~20 min); result autoscale-report.json
	scripts/autoscale-test.sh $(AUTOSCALE_FLAGS)

# The test report: the tools above on the running fleet (./start.sh
# first), their JSON under docs/report/, charts, docs/report.md. Run load
# under the shared lock: flock /tmp/kvfleet-load.lock make report.
# `make report --quick` is not a make option: use REPORT_FLAGS=--quick or
# make report-quick (scripts/report.sh --help lists the flags).
REPORT_FLAGS ?=

.PHONY: report report-quick report-render
report: ## the test report on the running fleet: e2e, reference systems, benchmark, chaos, autoscaling -> docs/report.md (~40 min)
	scripts/report.sh $(REPORT_FLAGS)

report-quick: ## the same with the short schedules (under 10 min)
	scripts/report.sh --quick $(REPORT_FLAGS)

report-render: ## redraw the charts and rewrite docs/report.md from docs/report/*.json
	$(GO) run ./cmd/kvfleet-report render

# The benchmark needs a running fleet (./start.sh); it sends traffic only to
# 127.0.0.1, and the containers it starts (reference server and nginx,
# broker helpers) carry the label kvfleet.bench.run and are removed at the end.
BENCH_FLAGS ?=

.PHONY: bench-fleet
bench-fleet: ## measure the running fleet against a reference on this machine (./start.sh first); BENCH_FLAGS=-quick: ~3 min
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/kvfleet-bench ./cmd/kvfleet-refserver
	$(BIN)/kvfleet-bench $(BENCH_FLAGS)

test-short: ## unit tests only (no servers needed)
	$(GO) test -race -short ./...

.PHONY: k8s-check
k8s-check: ## render the Kubernetes overlays (deploy/kubernetes) and check them; no cluster needed
	$(GO) test -race -count=1 ./deploy/kubernetes/

lint: ## go vet, gofmt and staticcheck
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 ./...

bench: ## run the benchmarks (decoding, version clock, cache entries)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

fuzz: ## fuzz the request decoding and the message form for 30s per target
	$(GO) test -run '^$$' -fuzz FuzzDecodePut -fuzztime 30s ./internal/httpapi/
	$(GO) test -run '^$$' -fuzz FuzzQueryKey -fuzztime 30s ./internal/httpapi/
	$(GO) test -run '^$$' -fuzz 'FuzzDecode$$' -fuzztime 30s ./internal/queue/
	$(GO) test -run '^$$' -fuzz FuzzDecodeBatch -fuzztime 30s ./internal/queue/

up: ## bring the Compose fleet up and run the smoke tests (same as ./start.sh)
	./start.sh

down: ## stop the fleet, keeping its data
	./start.sh --down

logs: ## print the fleet's recent logs
	./start.sh --logs

run-local: ## without Docker: one API and one consumer on local servers, with smoke tests
	scripts/run-local.sh

check-repo: ## fail if any tracked file is over 1 MiB (CI runs it first)
	scripts/check-repo.sh

clean: ## remove build output
	rm -rf $(BIN)

# Dashboards (internal/dashboard) and alert rules (deploy/prometheus/rules).
# DASHBOARDS_FLAGS, e.g. -prometheus http://127.0.0.1:19090 -png "" for
# the e2e fleet (kvfleet-dashboards live -h lists them).
DASHBOARDS_FLAGS ?=

.PHONY: dashboards dashboards-live alerts-test
dashboards: ## regenerate deploy/grafana/dashboards/*.json from internal/dashboard
	$(GO) run ./cmd/kvfleet-dashboards generate

dashboards-live: ## on the running fleet, with traffic: every panel query and alert against Prometheus; PNGs into docs/dashboards
	$(GO) run ./cmd/kvfleet-dashboards live $(DASHBOARDS_FLAGS)

alerts-test: ## promtool check and unit tests of the alert rules, and their runbooks
	$(GO) test -count=1 ./internal/alert/
