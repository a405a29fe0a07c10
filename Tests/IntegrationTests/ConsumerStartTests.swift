import Foundation
@testable import SlipwayAMQP
import SlipwayTransport
import Testing

@Suite("A consumer's first start, against RabbitMQ")
struct ConsumerStartTests {
    /// On a cluster, a quorum queue another process declared a moment ago may refuse consumers (541 internal error)
    /// until its replicas are up; a processor that gave up on that refusal exited at start. 405 RESOURCE_LOCKED (the
    /// queue is another connection's exclusive queue, gone when that connection closes) is a passing refusal of the
    /// same kind that a test can bring about at will.
    @Test("a queue the broker refuses for a while at start (locked by another connection) is waited for, then consumed")
    func passingRefusalWaitedOut() async throws {
        let configuration = try AMQPConfiguration(url: Broker.url)
        let queue = "consumer-start-\(UUID().uuidString.prefix(8))"
        let holder = try AMQPConnection(configuration: configuration, node: configuration.nodes[0])
        _ = try holder.declareQueue(queue, durable: false, exclusive: true, autoDelete: false)

        let logs = CapturedLogs()
        let transport = AMQPTransport(configuration: configuration, logger: logs.logger())
        let consuming = Task { try await transport.consume(queue: queue, prefetch: 10) }
        var refused = false
        for _ in 0..<300 where !refused {
            try await Task.sleep(for: .milliseconds(100))
            refused = logs.all.contains { $0.contains("cannot consume yet") && $0.contains("RESOURCE_LOCKED") }
        }
        #expect(refused, "the consumer was never refused: \(logs.all)")
        holder.close()  // The exclusive queue goes with its connection; the consumer's next attempt declares its own.

        let deliveries = try await consuming.value
        try await transport.publish([OutgoingMessage(exchange: "", routingKey: queue, body: Array("after the wait".utf8))])
        var iterator = deliveries.makeAsyncIterator()
        let delivery = try #require(try await iterator.next())
        #expect(String(decoding: delivery.body, as: UTF8.self) == "after the wait")
        await delivery.ack()
        await transport.shutdown()
    }
}
