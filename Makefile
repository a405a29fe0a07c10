.PHONY: deps build test demo baseline chaos broker-start broker-stop clean

deps:
	scripts/deps.sh

build: deps
	swift build

test:
	scripts/with-broker.sh scripts/test.sh

demo:
	scripts/with-broker.sh scripts/demo.sh

baseline:
	scripts/with-broker.sh scripts/baseline.sh

# 2,000 slips under SIGKILLs and two RabbitMQ restarts (docs/chaos.md). More: make chaos CHAOS_ARGS="--release --seed 7"
chaos:
	scripts/with-broker.sh scripts/chaos.sh $(CHAOS_ARGS)

broker-start:
	scripts/broker.sh start

broker-stop:
	scripts/broker.sh stop

clean:
	rm -rf .build
