import Foundation
import Slipway
import Testing

/// RabbitMQ under a resource alarm blocks publishers (`connection.blocked`): a processor says so once, starts no new
/// hop, lets the hops in flight wait for their forwards without timing them out into retries, and goes on when the
/// broker unblocks.
@Suite("A broker that blocks publishers")
struct BlockedBrokerTests {
    @Test(
        """
        while a memory alarm blocks publishing, a processor logs it once, retries and faults nothing although its \
        publish timeout passes, and every slip completes once the alarm ends
        """)
    func blockedPublishingWaits() async throws {
        // A node of the test's own: the alarm blocks every publisher on the node.
        let broker = try await PrivateBroker.start(portOffset: 40)
        defer { broker.stop() }
        // A publish timeout far shorter than the block: time spent blocked must not count against it.
        let fleet = try SagaFleet(
            name: "blocked", amqpURL: broker.url + "?publish_timeout=2000",
            environment: ["first": ["SLIPWAY_LOG_LEVEL": "info"], "second": ["SLIPWAY_LOG_LEVEL": "info"]])
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        defer { Task { await producer.transport.shutdown() } }
        let slips = (1...20).map { _ in
            Slip(template: "blocked-test", itinerary: [ItineraryStep(step: "first"), ItineraryStep(step: "second")])
        }
        let follower = try await producer.follow(slips)
        defer { follower.stop() }
        // Queued before the alarm (the producer would be blocked too); the processors start under it.
        try await producer.sender.send(slips)
        try await Self.setWatermark(broker, 0.0001)
        try await Self.waitForMemoryAlarm(broker, on: true)
        try fleet.startProbe("first")
        try fleet.startProbe("second")

        let blockedLine = "RabbitMQ blocked publishing"
        try await Self.waitForLog(fleet, "first", blockedLine)
        // Blocked well past the publish timeout: confirms timed out here would turn into retries and errors.
        try await Task.sleep(for: .seconds(6))
        try await Self.setWatermark(broker, 0.4)

        let ends = try await producer.collect(follower, count: slips.count, timeout: .seconds(90))
        for slip in slips { #expect(ends[slip.id]?.state == .completed, "logs:\n\(fleet.log("first"))") }
        try await Self.waitForLog(fleet, "first", "RabbitMQ unblocked publishing after")
        let log = fleet.log("first")
        #expect(log.components(separatedBy: blockedLine).count - 1 == 1, "\(log)")
        #expect(log.contains("low on memory") || log.contains("memory"), "the broker's reason: \(log)")
        for failure in ["no publisher confirm", "hop not finished", "attempt failed", "gave up", "already done"] {
            #expect(!log.contains(failure), "'\(failure)' in the log:\n\(log)")
        }
        // Every hop ran once, on its first attempt.
        for slip in slips {
            let event = try #require(ends[slip.id])
            let log = try #require(event.log)
            #expect(log.count == 2 && log.allSatisfy { $0.attempt == 1 && $0.outcome == .completed }, "\(log)")
        }
    }

    static func setWatermark(_ broker: PrivateBroker, _ fraction: Double) async throws {
        let result = try await runToEnd(
            "/usr/sbin/rabbitmqctl", ["-n", broker.nodeName, "-q", "set_vm_memory_high_watermark", "\(fraction)"])
        try #require(result.status == 0, "\(result.errors)")
    }

    /// Polls the node's alarms until its memory alarm is on (or off).
    static func waitForMemoryAlarm(_ broker: PrivateBroker, on: Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < deadline {
            let result = try await runToEnd(
                "/usr/sbin/rabbitmq-diagnostics", ["-n", broker.nodeName, "-q", "alarms"], mergingErrors: true)
            if result.output.lowercased().contains("memory alarm") == on { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw HarnessError("the memory alarm did not turn \(on ? "on" : "off") within 30 s")
    }

    static func waitForLog(_ fleet: SagaFleet, _ name: String, _ text: String) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while ContinuousClock.now < deadline {
            if fleet.log(name).contains(text) { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError("'\(text)' not in \(name)'s log within 60 s:\n\(fleet.log(name))")
    }
}
