import Foundation
import Slipway
import SlipwayTesting
import SlipwayTransport
import Testing

/// Generous: the broker answers in microseconds; the bound only keeps a broken test from hanging.
private let patience: Duration = .seconds(10)

/// The fake broker behaves like RabbitMQ where the runtime depends on it.
@Suite("In-memory broker")
struct InMemoryBrokerTests {
    private func message(_ queue: String, _ text: String) -> OutgoingMessage {
        .toQueue(queue, body: Array(text.utf8))
    }

    private func text(_ delivery: Delivery) -> String { String(decoding: delivery.body, as: UTF8.self) }

    @Test("topic binding keys: * is one word, # is zero or more")
    func topicMatching() {
        #expect(InMemoryBroker.topic("terminal.completed.s1", matches: "terminal.*.s1"))
        #expect(!InMemoryBroker.topic("terminal.completed.s1", matches: "terminal.*.s2"))
        #expect(!InMemoryBroker.topic("terminal.s1", matches: "terminal.*.s1"))
        #expect(InMemoryBroker.topic("terminal.completed.s1", matches: "terminal.#"))
        #expect(InMemoryBroker.topic("terminal", matches: "terminal.#"))
        #expect(InMemoryBroker.topic("a.b.c.d", matches: "a.#.d"))
        #expect(InMemoryBroker.topic("a.d", matches: "a.#.d"))
        #expect(!InMemoryBroker.topic("a.b.c", matches: "a.#.d"))
        #expect(InMemoryBroker.topic("anything.at.all", matches: "#"))
        #expect(!InMemoryBroker.topic("a.b", matches: "a"))
    }

    @Test("the default exchange drops a message for a queue that does not exist; declaring is idempotent")
    func defaultExchange() async throws {
        let broker = InMemoryBroker()
        let transport = InMemoryTransport(broker: broker)
        try await transport.publish([message("q", "lost")])
        #expect(await broker.queueDepth("q") == 0)
        #expect(await !broker.queueExists("q"))
        try await transport.declareQueue("q")
        try await transport.publish([message("q", "kept")])
        try await transport.declareQueue("q")
        #expect(await broker.messages(in: "q").map(\.body) == [Array("kept".utf8)])
        #expect(await broker.publishCount == 2)
    }

    @Test("publishing to an exchange never declared fails")
    func undeclaredExchange() async throws {
        let transport = InMemoryTransport(broker: InMemoryBroker())
        await #expect(throws: TransportError.self) {
            try await transport.publish([OutgoingMessage(exchange: "nope", routingKey: "x", body: [])])
        }
    }

    @Test("a subscription gets the events its binding keys match, once each")
    func subscription() async throws {
        let broker = InMemoryBroker()
        let transport = InMemoryTransport(broker: broker)
        try await transport.declareTopicExchange("events")
        let stream = try await transport.subscribe(exchange: "events", bindingKeys: ["terminal.#", "*.*.s1"])
        try await transport.publish([
            OutgoingMessage(exchange: "events", routingKey: "terminal.completed.s1", body: Array("1".utf8)),
            OutgoingMessage(exchange: "events", routingKey: "execute.a.s2", body: Array("2".utf8)),
            OutgoingMessage(exchange: "events", routingKey: "execute.a.s1", body: Array("3".utf8)),
        ])
        var iterator = stream.makeAsyncIterator()
        let first = try #require(try await iterator.next())
        let second = try #require(try await iterator.next())
        #expect([text(first), text(second)] == ["1", "3"])
        await first.ack()
        await second.ack()
        stream.stop()
        #expect(try await iterator.next() == nil)
        #expect(await broker.protocolViolations.isEmpty)
    }

    @Test("a consumer has at most prefetch unacked deliveries; an ack lets the next one through")
    func prefetch() async throws {
        let broker = InMemoryBroker()
        let transport = InMemoryTransport(broker: broker)
        try await transport.declareQueue("q")
        try await transport.publish((1...5).map { message("q", "\($0)") })
        let stream = try await transport.consume(queue: "q", prefetch: 2)
        var iterator = stream.makeAsyncIterator()
        let first = try #require(try await iterator.next())
        _ = try #require(try await iterator.next())
        #expect(await broker.queueDepth("q") == 3)
        #expect(await broker.unackedCount("q") == 2)
        await first.ack()
        #expect(await broker.queueDepth("q") == 2)
        let third = try #require(try await iterator.next())
        #expect(text(third) == "3")
        stream.stop()
    }

    @Test("several consumers of one queue take turns")
    func roundRobin() async throws {
        let broker = InMemoryBroker()
        let one = InMemoryTransport(broker: broker)
        let two = InMemoryTransport(broker: broker)
        let streamOne = try await one.consume(queue: "q", prefetch: 10)
        let streamTwo = try await two.consume(queue: "q", prefetch: 10)
        try await one.publish((1...4).map { message("q", "\($0)") })
        var iteratorOne = streamOne.makeAsyncIterator()
        var iteratorTwo = streamTwo.makeAsyncIterator()
        var gotOne: [String] = []
        var gotTwo: [String] = []
        for _ in 0..<2 {
            gotOne.append(text(try #require(try await iteratorOne.next())))
            gotTwo.append(text(try #require(try await iteratorTwo.next())))
        }
        #expect(gotOne == ["1", "3"])
        #expect(gotTwo == ["2", "4"])
        streamOne.stop()
        streamTwo.stop()
    }

    @Test("a release puts the message back at the front, marked redelivered")
    func release() async throws {
        let broker = InMemoryBroker()
        let transport = InMemoryTransport(broker: broker)
        try await transport.declareQueue("q")
        try await transport.publish([message("q", "1"), message("q", "2")])
        let stream = try await transport.consume(queue: "q", prefetch: 1)
        var iterator = stream.makeAsyncIterator()
        let first = try #require(try await iterator.next())
        #expect(!first.redelivered)
        await first.release()
        let again = try #require(try await iterator.next())
        #expect(text(again) == "1")
        #expect(again.redelivered)
        await again.ack()
        let second = try #require(try await iterator.next())
        #expect(text(second) == "2")
        #expect(!second.redelivered)
        await second.ack()
        stream.stop()
        #expect(try await iterator.next() == nil)
        #expect(await broker.waitUntilIdle(timeout: patience))
    }

    @Test("stopping a stream ends it after what was delivered; those deliveries stay unacked until settled")
    func stop() async throws {
        let broker = InMemoryBroker()
        let transport = InMemoryTransport(broker: broker)
        try await transport.declareQueue("q")
        try await transport.publish((1...3).map { message("q", "\($0)") })
        let stream = try await transport.consume(queue: "q", prefetch: 2)
        stream.stop()
        var received: [Delivery] = []
        for try await delivery in stream { received.append(delivery) }
        #expect(received.map(text) == ["1", "2"])
        #expect(await broker.unackedCount("q") == 2)
        #expect(await broker.queueDepth("q") == 1)
        for delivery in received { await delivery.ack() }
        #expect(await broker.unackedCount("q") == 0)
        #expect(await broker.queueDepth("q") == 1)
        #expect(await broker.consumerCount("q") == 0)
    }

    @Test("a crash requeues the connection's unacked deliveries as redelivered and ends its streams at once")
    func crash() async throws {
        let broker = InMemoryBroker()
        let doomed = InMemoryTransport(broker: broker)
        try await doomed.declareQueue("q")
        try await doomed.publish((1...3).map { message("q", "\($0)") })
        let stream = try await doomed.consume(queue: "q", prefetch: 2)
        var iterator = stream.makeAsyncIterator()
        let taken = try #require(try await iterator.next())
        await doomed.crash()
        #expect(try await iterator.next() == nil)  // "2" was delivered but is not handed out by a dead process.
        await taken.ack()  // Ignored: the connection is gone.
        await #expect(throws: TransportError.self) { try await doomed.publish([message("q", "4")]) }

        let messages = await broker.messages(in: "q")
        #expect(messages.map { String(decoding: $0.body, as: UTF8.self) } == ["1", "2", "3"])
        #expect(messages.map(\.redelivered) == [true, true, false])
        #expect(await broker.protocolViolations.isEmpty)

        let survivor = InMemoryTransport(broker: broker)
        let other = try await survivor.consume(queue: "q", prefetch: 10)
        var otherIterator = other.makeAsyncIterator()
        let redelivered = try #require(try await otherIterator.next())
        #expect(text(redelivered) == "1")
        #expect(redelivered.redelivered)
        other.stop()
    }

    @Test("acking a delivery twice is reported as a protocol violation")
    func doubleAck() async throws {
        let broker = InMemoryBroker()
        let transport = InMemoryTransport(broker: broker)
        try await transport.publish([])
        try await transport.declareQueue("q")
        try await transport.publish([message("q", "1")])
        let stream = try await transport.consume(queue: "q", prefetch: 1)
        var iterator = stream.makeAsyncIterator()
        let delivery = try #require(try await iterator.next())
        await delivery.ack()
        await delivery.ack()
        #expect(await broker.protocolViolations.count == 1)
        stream.stop()
    }
}
