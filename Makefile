# kvfleet: common tasks. `make` alone lists them.
GO       ?= go
BIN      := bin
BINARIES := kvfleet-api kvfleet-consumer kvfleet-local

.DEFAULT_GOAL := help
.PHONY: help build test test-short e2e lint bench fuzz up down logs run-local clean check-repo

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the binaries into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

test: ## the README's test command: unit and integration tests (-race), then the e2e suite on a Compose fleet
	scripts/install-test-deps.sh
	$(GO) vet ./...
	$(GO) vet -tags e2e ./internal/e2e/
	$(GO) test -race -count=1 -timeout 20m ./...
	scripts/e2e.sh

e2e: ## bring up a separate fleet (project kvfleet-e2e, port 18000), run the e2e suite, tear it down
	scripts/e2e.sh

test-short: ## unit tests only (no servers needed)
	$(GO) test -race -short ./...

lint: ## go vet, gofmt and staticcheck
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 ./...

bench: ## run the benchmarks (decoding, version clock, cache entries)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

fuzz: ## fuzz the request decoding for 30s per target
	$(GO) test -run '^$$' -fuzz FuzzDecodePut -fuzztime 30s ./internal/httpapi/
	$(GO) test -run '^$$' -fuzz FuzzQueryKey -fuzztime 30s ./internal/httpapi/

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
