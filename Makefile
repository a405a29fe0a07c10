.PHONY: deps build test demo baseline bench bench-cluster microbench chaos chaos-cluster broker-start broker-stop clean

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

# The chain-K benchmark (docs/performance.md). Options to slipway-bench: make bench BENCH_ARGS="--mode scaling"
bench:
	scripts/with-broker.sh scripts/bench.sh $(BENCH_ARGS)

# The same on a 3-node RabbitMQ cluster: quorum against classic queues, in one run (docs/performance.md).
bench-cluster:
	scripts/deps.sh
	scripts/bench-cluster.sh $(BENCH_ARGS)

# The hand-written codecs (slip JSON, timestamps, AMQP URI) against Foundation's, in a release build of the nested
# package Benchmarks/ (docs/performance.md, Microbenchmarks). Not part of make test.
microbench: deps
	cd Benchmarks && swift package benchmark $(MICROBENCH_ARGS)

# 2,000 slips under SIGKILLs and two RabbitMQ restarts (docs/chaos.md). More: make chaos CHAOS_ARGS="--release --seed 7"
chaos:
	scripts/with-broker.sh scripts/chaos.sh $(CHAOS_ARGS)

# The same on a 3-node RabbitMQ cluster with quorum queues, two instances a step, node kills (docs/chaos.md).
chaos-cluster:
	scripts/deps.sh
	scripts/chaos-cluster.sh $(CHAOS_ARGS)

broker-start:
	scripts/broker.sh start

broker-stop:
	scripts/broker.sh stop

clean:
	rm -rf .build .build-release .build-static
