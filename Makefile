.PHONY: deps build test demo baseline bench broker-start broker-stop clean

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

# The chain-K benchmark; pass options to `slip bench` with ARGS="--mode scaling --slips 2000".
bench:
	scripts/with-broker.sh scripts/bench.sh $(ARGS)

broker-start:
	scripts/broker.sh start

broker-stop:
	scripts/broker.sh stop

clean:
	rm -rf .build
