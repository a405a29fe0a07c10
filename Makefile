.PHONY: deps build test demo baseline broker-start broker-stop clean

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

broker-start:
	scripts/broker.sh start

broker-stop:
	scripts/broker.sh stop

clean:
	rm -rf .build
