import Foundation
import Logging
import ServiceLifecycle
import SlipwayAMQP
import SlipwayTransport
import Testing

@Suite("AMQPTransport as a Service in a ServiceGroup, against RabbitMQ")
struct TransportServiceTests {
    @Test(
        "the transport works while its group runs; after a graceful shutdown run() has returned, the loop's thread is gone, and a publish fails as shut down",
        .timeLimit(.minutes(2)))
    func runsUntilGracefulShutdown() async throws {
        let threadName = "svc-loop-\(UUID().uuidString.prefix(5))"  // unique among the tests running alongside
        let loop = AMQPLoop(name: threadName)
        let transport = AMQPTransport(configuration: try AMQPConfiguration(url: try Broker.url), logger: quiet, loop: loop)
        #expect(!Self.threadNames().contains(threadName), "a thread started before the transport was used or run")

        let group = ServiceGroup(configuration: .init(services: [transport], logger: quiet))
        let running = Task { try await group.run() }
        let queue = "slipway-test-service-\(UUID().uuidString.prefix(8))"
        try await transport.declareQueue(queue)
        let deliveries = try await transport.consume(queue: queue, prefetch: 10)
        try await transport.publish([.toQueue(queue, body: Array("through the service".utf8))])
        var iterator = deliveries.makeAsyncIterator()
        let delivery = try #require(try await iterator.next())
        #expect(String(decoding: delivery.body, as: UTF8.self) == "through the service")
        await delivery.ack()
        #expect(Self.threadNames().contains(threadName))

        await group.triggerGracefulShutdown()
        try await running.value
        #expect(try await Self.threadEnds(threadName), "the loop's thread outlived run()")
        let error = await #expect(throws: TransportError.self) {
            try await transport.publish([.toQueue(queue, body: Array("too late".utf8))])
        }
        #expect(error?.code == .shutDown)
    }

    /// A processor's group lists [transport, store, runtime]: the runtime, shut down first, still publishes and acks
    /// while it finishes its hops, before the transport closes.
    @Test(
        "a service listed after the transport still publishes while it shuts down (a thread per connection)",
        .timeLimit(.minutes(2)))
    func laterServicesFinishFirst() async throws {
        let transport = try Broker.transport()
        let queue = "slipway-test-service-order-\(UUID().uuidString.prefix(8))"
        try await transport.declareQueue(queue)
        let group = ServiceGroup(
            configuration: .init(services: [transport, LastWords(transport: transport, queue: queue)], logger: quiet))
        let running = Task { try await group.run() }
        await group.triggerGracefulShutdown()
        try await running.value  // LastWords' publish would have thrown had the transport closed first

        let checker = try Broker.transport()
        let deliveries = try await checker.consume(queue: queue, prefetch: 10)
        var iterator = deliveries.makeAsyncIterator()
        let delivery = try #require(try await iterator.next())
        #expect(String(decoding: delivery.body, as: UTF8.self) == "published while shutting down")
        await delivery.ack()
        await checker.shutdown()
    }

    /// Publishes once its group shuts down, as a runtime finishing its hops does.
    private struct LastWords: Service {
        let transport: AMQPTransport
        let queue: String

        func run() async throws {
            try await gracefulShutdown()
            try await transport.publish([.toQueue(queue, body: Array("published while shutting down".utf8))])
        }
    }

    private var quiet: Logger {
        var logger = Logger(label: "test.amqp.service")
        logger.logLevel = .warning
        return logger
    }

    /// Whether the thread named so is gone, or goes within 5 s: `run()` returns after the loop's last pass, and the OS
    /// thread takes a moment more to exit.
    private static func threadEnds(_ name: String) async throws -> Bool {
        for _ in 0..<500 {
            if !threadNames().contains(name) { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// The names of this process's threads, as `top -H` shows them.
    private static func threadNames() -> Set<String> {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return Set(
            tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
    }
}
