# kvfleet: common tasks. `make` alone lists them.
GO       ?= go
BIN      := bin
BINARIES := kvfleet-api kvfleet-consumer kvfleet-local

.DEFAULT_GOAL := help
.PHONY: help build test test-short lint bench fuzz run clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the binaries into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

test: ## install the test servers if missing, then vet and run every test with -race
	scripts/install-test-deps.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

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

run: ## run one API and one consumer on local servers, with smoke tests (same as ./start.sh)
	./start.sh

clean: ## remove build output
	rm -rf $(BIN)
