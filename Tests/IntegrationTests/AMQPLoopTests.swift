import Foundation
import Logging
import SlipwayAMQP
import SlipwayTransport
import Testing

@Suite("One loop for a processor's connections and its hops (SLIPWAY_IO=loop)")
struct AMQPLoopTests {
    @Test(
        "a publisher and a consumer on one loop move 300 messages through RabbitMQ, and the tasks using them run on the loop's thread",
        .timeLimit(.minutes(3)))
    func roundTrip() async throws {
        let loop = AMQPLoop(name: "test-loop")
        var logger = Logger(label: "test.amqp")
        logger.logLevel = .warning
        let transport = AMQPTransport(configuration: try AMQPConfiguration(url: try Broker.url), logger: logger, loop: loop)
        #expect(transport.taskExecutor != nil)
        let queue = "slipway-test-loop-\(UUID().uuidString.prefix(8))"
        try await transport.declareQueue(queue)
        // A prefetch far below the count: the consumer gets them all only if its acks reach the broker.
        let deliveries = try await transport.consume(queue: queue, prefetch: 16)
        let sent = Set((0..<300).map { "message \($0)" })

        let (received, everyHopOnLoop) = try await withTaskExecutorPreference(loop) {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    var onLoop = true
                    for body in sent.sorted() {
                        try await transport.publish([.toQueue(queue, body: Array(body.utf8))])
                        onLoop = onLoop && loop.isCurrent
                    }
                    return onLoop
                }
                var received: Set<String> = []
                var onLoop = true
                for try await delivery in deliveries {
                    onLoop = onLoop && loop.isCurrent
                    received.insert(String(decoding: delivery.body, as: UTF8.self))
                    await delivery.ack()
                    if received.count == sent.count { break }
                }
                for try await publisherOnLoop in group { onLoop = onLoop && publisherOnLoop }
                return (received, onLoop)
            }
        }
        deliveries.stop()
        await transport.shutdown()
        #expect(received == sent)
        #expect(everyHopOnLoop)
    }

    @Test(
        "a declare waiting for the broker to come back does not hold up the loop: its other work runs, and the declare succeeds after",
        // A hang guard, not a speed check: it holds two broker starts, and on a loaded 2-core CI machine starting
        // several test brokers at once one start took 55 s.
        .timeLimit(.minutes(6)))
    func declareDuringOutage() async throws {
        let broker = try await PrivateBroker.start(portOffset: 30)
        defer { broker.stop() }
        let loop = AMQPLoop(name: "test-outage-loop")
        let logs = CapturedLogs()
        let transport = AMQPTransport(
            configuration: try AMQPConfiguration(url: broker.url), logger: logs.logger(), loop: loop)
        try await transport.declareQueue("slipway-test-before-outage")

        broker.stop()
        let declare = Task { try await transport.declareQueue("slipway-test-during-outage") }
        // Once the declare has failed and waits to try again, work for the loop. Were the loop asleep inside the
        // declare's retries, this would wait for the broker, which is started only after it: the test would run out
        // of time.
        while !logs.all.contains(where: { $0.contains("declaring queue 'slipway-test-during-outage' failed") }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let ranOnLoop = await Task(executorPreference: loop) { loop.isCurrent }.value
        #expect(ranOnLoop)

        let restarted = try await PrivateBroker.start(port: broker.port)
        defer { restarted.stop() }
        try await declare.value
        await transport.shutdown()
    }

    @Test(
        "a publisher whose connection the broker closed while it was idle lets its loop sleep, and reconnects on the next publish",
        .timeLimit(.minutes(6)))
    func idleLossDoesNotSpin() async throws {
        let broker = try await PrivateBroker.start(portOffset: 31)
        defer { broker.stop() }
        let loop = AMQPLoop(name: "test-idle-loss")
        let logs = CapturedLogs()
        let transport = AMQPTransport(
            configuration: try AMQPConfiguration(url: broker.url), logger: logs.logger(), loop: loop)
        let queue = "slipway-test-idle-loss"
        try await transport.declareQueue(queue)
        try await transport.publish([.toQueue(queue, body: Array("before".utf8))])

        broker.stop()
        while !logs.all.contains(where: { $0.contains("idle connection lost") }) {
            try await Task.sleep(for: .milliseconds(50))
        }
        // Nothing to do until the next publish: a pass a second at most (its heartbeat deadline). A loop that spins
        // goes round tens of thousands of times in the same while.
        let before = loop.passes
        try await Task.sleep(for: .seconds(2))
        let passes = loop.passes - before
        #expect(passes < 50, "the idle loop went round \(passes) times in 2 s")

        let restarted = try await PrivateBroker.start(port: broker.port)
        defer { restarted.stop() }
        try await transport.publish([.toQueue(queue, body: Array("after".utf8))])
        await transport.shutdown()
    }

    @Test("a task that blocks the loop's thread is reported with the way out; one that awaits as long is not")
    func blockingTaskIsReported() async throws {
        let logs = CapturedLogs()
        let loop = AMQPLoop(name: "test-blocked", logger: logs.logger())
        func warnings() -> [String] { logs.all.filter { $0.contains("held the processor's loop") } }

        // Suspended, not blocking: the loop runs other work meanwhile.
        await Task(executorPreference: loop) { try? await Task.sleep(for: .milliseconds(700)) }.value
        await Task(executorPreference: loop) {}.value
        #expect(warnings().isEmpty)

        await Task(executorPreference: loop) { _ = usleep(700_000) }.value
        await Task(executorPreference: loop) {}.value  // the loop reports a task once it has returned, before the next
        let reported = try #require(warnings().first)
        #expect(reported.contains("--io threads"))
        #expect(reported.contains("loop.held_ms"))
    }
}
