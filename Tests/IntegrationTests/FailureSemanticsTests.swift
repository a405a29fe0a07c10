import Foundation
import Slipway
import Synchronization
import Testing

/// Retries, timeouts, deadlines, delay steps and poison messages over a real RabbitMQ, with `probe-step` processes
/// (their slip arguments make them misbehave: see Processors/probe-step).
@Suite("Failure semantics over RabbitMQ")
struct FailureSemanticsIntegrationTests {
    static func probeFleet(_ name: String, steps: [String] = ["a", "b", "c"]) throws -> (SagaFleet, Producer) {
        let fleet = try SagaFleet(name: name)
        for step in steps { try fleet.startProbe(step) }
        return (fleet, try Producer(fleet: fleet))
    }

    static func slip(_ arguments: [String: [String: JSONValue]] = [:], steps: [String] = ["a", "b", "c"]) -> Slip {
        Slip(template: "probe", itinerary: steps.map { ItineraryStep(step: $0, arguments: arguments[$0] ?? [:]) })
    }

    @Test("a step failing twice then succeeding completes on attempt 3 after waits no shorter than the policy's")
    func retriesThroughDelayQueues() async throws {
        let (fleet, producer) = try Self.probeFleet("retry")
        defer { fleet.stopAll() }
        var slip = Self.slip(["b": ["throwTimes": 2]])
        let policy = RetryPolicy(maxAttempts: 3, initialDelayMs: 300, multiplier: 2, maxDelayMs: 10_000, jitter: 0.3)
        slip.itinerary[1].retry = policy

        let event = try #require(try await producer.run([slip])[slip.id])

        #expect(event.state == .completed)
        let tries = (event.log ?? []).filter { $0.step == "b" }
        #expect(tries.map(\.attempt) == [1, 2, 3])
        for (index, pair) in zip(tries, tries.dropFirst()).enumerated() {
            let waited = pair.1.startedAt.timeIntervalSince(pair.0.startedAt) * 1000
            #expect(waited >= Double(policy.baseDelayMs(afterAttempt: index + 1)), "retry \(index + 1) came after \(waited) ms")
        }
        #expect((event.log ?? []).filter { $0.step == "c" }.map(\.attempt) == [1], "attempts start again at the next step")
    }

    @Test("a step failing past its attempts faults and compensates the steps before it")
    func exhaustedRetriesCompensate() async throws {
        let (fleet, producer) = try Self.probeFleet("exhausted")
        defer { fleet.stopAll() }
        var slip = Self.slip(["b": ["throwTimes": 99]])
        slip.itinerary[1].retry = RetryPolicy(maxAttempts: 3, initialDelayMs: 50, multiplier: 2, maxDelayMs: 1_000, jitter: 0)

        let event = try #require(try await producer.run([slip])[slip.id])

        #expect(event.state == .compensated)
        #expect(event.fault?.step == "b" && event.fault?.attempts == 3)
        #expect((event.log ?? []).map { "\($0.kind.rawValue) \($0.step) \($0.outcome.rawValue)" } == [
            "execute a completed", "execute b retried", "execute b retried", "execute b faulted", "compensate a completed",
        ])
    }

    @Test("a step that outlives its timeout counts as a failed attempt, and the slip compensates after the last one")
    func stepTimeout() async throws {
        let (fleet, producer) = try Self.probeFleet("timeout")
        defer { fleet.stopAll() }
        var slip = Self.slip(["b": ["sleepMs": 10_000]])
        slip.itinerary[1].timeoutMs = 300
        slip.itinerary[1].retry = .immediate(maxAttempts: 2)

        let event = try #require(try await producer.run([slip])[slip.id])

        #expect(event.state == .compensated)
        #expect(event.fault?.reason.contains("timeout") == true)
    }

    @Test("a slip past its deadline runs no further step and compensates")
    func slipDeadline() async throws {
        let (fleet, producer) = try Self.probeFleet("deadline")
        defer { fleet.stopAll() }
        // The processors are up and serving before the clock starts (on a loaded machine, starting takes seconds).
        let warmUp = Self.slip()
        #expect(try await producer.run([warmUp])[warmUp.id]?.state == .completed)
        // b outlasts the deadline by far, and a has 30 s to start before it: under a parallel test run on 2 cores, a
        // once took more than 10 s to start, and the slip faulted at a with nothing to compensate.
        var slip = Self.slip(["b": ["sleepMs": 45_000]])
        slip.deadline = Date().addingTimeInterval(30)

        let event = try #require(try await producer.run([slip], timeout: .seconds(150))[slip.id])

        #expect(event.state == .compensated)
        #expect(event.fault?.step == "c" && event.fault?.reason.contains("deadline") == true)
        #expect(!(event.log ?? []).contains { $0.step == "c" && $0.kind == .execute && $0.outcome == .completed })
    }

    @Test("a delay step holds the slip in the broker; its next processor killed and restarted during the wait changes nothing")
    func delayStepSurvivesARestart() async throws {
        let (fleet, producer) = try Self.probeFleet("delay")
        defer { fleet.stopAll() }
        let slip = Self.slip(["a": ["waitMs": 3_000]])
        let follower = try await producer.follow([slip])
        defer { follower.stop() }
        try await producer.sender.send(slip)

        // While the slip waits in the delay queue, b's processor dies and comes back.
        try await Task.sleep(for: .milliseconds(800))
        await fleet.kill("b")
        try fleet.startProbe("b")

        let event = try #require(try await producer.collect(follower, count: 1, timeout: .seconds(60))[slip.id])
        #expect(event.state == .completed)
        let log = event.log ?? []
        let a = try #require(log.first { $0.step == "a" })
        let b = try #require(log.first { $0.step == "b" })
        let waited = b.startedAt.timeIntervalSince(a.startedAt) * 1000
        #expect(waited >= 3_000, "b started \(waited) ms after a")
        #expect(log.filter { $0.step == "b" }.count == 1)
    }

    @Test("a step can end the slip early without compensation, or revise the steps still to come; the audit shows both")
    func terminateAndRevise() async throws {
        let (fleet, producer) = try Self.probeFleet("terminate")
        try fleet.startSink()
        defer { fleet.stopAll() }
        let ended = Self.slip(["b": ["terminate": "nothing left to do"]])
        let revised = Self.slip(["a": ["removeSteps": ["b"]]])
        let events = try await producer.run([ended, revised])

        #expect(events[ended.id]?.state == .terminated)
        #expect(events[ended.id]?.log?.map(\.step) == ["a", "b"], "c never ran and a was not compensated")
        #expect(events[revised.id]?.state == .completed)
        #expect(events[revised.id]?.log?.map(\.step) == ["a", "c"], "b removed")

        let endedTrail = try await AuditTests.recordedTimeline(fleet, ended.id)
        #expect(endedTrail.slip.state == .terminated)
        #expect(endedTrail.hops.contains { $0.step == "b" && $0.outcome == "terminated" && $0.reason == "nothing left to do" })
        let revisedTrail = try await AuditTests.recordedTimeline(fleet, revised.id)
        #expect(revisedTrail.hops.first?.reason?.contains("itinerary revised") == true)
    }

    @Test("a message that kills its processor again and again is parked as poison, and the processor carries on")
    func poisonIsParked() async throws {
        let (fleet, producer) = try Self.probeFleet("poison")
        defer { fleet.stopAll() }
        let poison = Self.slip(["b": ["crashTimes": 1_000]])
        try await producer.sender.send(poison)

        // A supervisor, as systemd or Kubernetes would be: restart b whenever it dies.
        let done = Flag()
        let parkedReader = Task {
            defer { done.set() }
            return try await producer.parked(count: 1, timeout: .seconds(90))
        }
        var restarts = 0
        while restarts < 20 && !done.isSet {
            if !fleet.isRunning("b") {
                _ = await fleet.stop("b")
                try fleet.startProbe("b")
                restarts += 1
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let parked = try await parkedReader.value
        try #require(parked.count == 1)
        #expect(parked[0].headers[ParkedHeaders.reasonCode] == "poison")
        #expect(parked[0].headers[ParkedHeaders.slipID] == poison.id)
        #expect(restarts >= 4, "b died \(restarts) times before the message was parked")

        // The same processor serves a healthy slip afterwards.
        let healthy = Self.slip()
        #expect(try await producer.run([healthy])[healthy.id]?.state == .completed)
    }
}

final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
