import ExampleLedger
import Foundation
import Slipway
import SlipwayAudit
import Testing

/// The audit sink as a process beside the saga's processors, and the `slip audit` queries an operator runs.
@Suite("Audit trail over RabbitMQ")
struct AuditTests {
    /// Polls `slip audit show ID --json` until the sink has recorded the slip's end.
    static func recordedTimeline(_ fleet: SagaFleet, _ slipID: String, timeout: Duration = .seconds(60)) async throws
        -> AuditTimeline
    {
        try await recorded(fleet, slipID, "the end", timeout: timeout) { $0.slip.terminal }
    }

    /// Polls `slip audit show ID --json` until the sink has recorded a park as the slip's newest event.
    static func recordedPark(_ fleet: SagaFleet, _ slipID: String, timeout: Duration = .seconds(60)) async throws
        -> AuditTimeline
    {
        try await recorded(fleet, slipID, "a park", timeout: timeout) { $0.slip.lastKind == "parked" }
    }

    /// Polls `slip audit show ID --json` until its timeline is `done`.
    private static func recorded(
        _ fleet: SagaFleet, _ slipID: String, _ what: String, timeout: Duration, done: (AuditTimeline) -> Bool
    ) async throws -> AuditTimeline {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let result = try await fleet.slip(["audit", "show", slipID, "--json"])
            if result.status == 0 {
                let timeline = try SlipCodec.makeDecoder().decode(AuditTimeline.self, from: Data(result.output.utf8))
                if done(timeline) { return timeline }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError("the audit trail did not record \(what) of slip \(slipID) within \(timeout)")
    }

    struct Row: Equatable, CustomStringConvertible {
        var sequence: Int, kind: String, step: String, outcome: String
        init(_ sequence: Int, _ kind: String, _ step: String, _ outcome: String) {
            (self.sequence, self.kind, self.step, self.outcome) = (sequence, kind, step, outcome)
        }
        init(_ hop: AuditHop) { self.init(hop.sequence, hop.kind, hop.step, hop.outcome) }
        var description: String { "\(sequence) \(kind) \(step) \(outcome)" }
    }

    @Test("after completed and compensated orders, `slip audit show` lists exactly their hops in order, as JSON too")
    func showListsTheHopsInOrder() async throws {
        let fleet = try SagaFleet(name: "audit-show")
        try fleet.startAll()
        try fleet.startSink()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let completed = try producer.order()
        let compensated = try producer.order(["country": "AQ"])
        _ = try await producer.run([completed, compensated])

        let done = try await Self.recordedTimeline(fleet, completed.id)
        #expect(done.slip.state == .completed)
        #expect(
            done.hops.map(Row.init) == [
                Row(0, "execute", "reserve-stock", "completed"), Row(1, "execute", "charge-card", "completed"),
                Row(2, "execute", "ship-order", "completed"), Row(3, "execute", "notify-customer", "completed"),
                Row(3, "terminal", "notify-customer", "completed"),
            ])
        let undone = try await Self.recordedTimeline(fleet, compensated.id)
        #expect(undone.slip.state == .compensated)
        #expect(undone.slip.faultStep == "ship-order")
        #expect(
            undone.hops.map(Row.init) == [
                Row(0, "execute", "reserve-stock", "completed"), Row(1, "execute", "charge-card", "completed"),
                Row(2, "execute", "ship-order", "faulted"), Row(3, "compensate", "charge-card", "completed"),
                Row(4, "compensate", "reserve-stock", "completed"), Row(4, "terminal", "reserve-stock", "compensated"),
            ])
        #expect(undone.hops.allSatisfy { $0.processor.contains(":") })

        let human = try await fleet.slip(["audit", "show", compensated.id])
        #expect(human.status == 0)
        for step in ["reserve-stock", "charge-card", "ship-order", "compensated"] { #expect(human.output.contains(step)) }
        let unknown = try await fleet.slip(["audit", "show", "no-such-slip"])
        #expect(unknown.status != 0 && unknown.errors.hasPrefix("slip: ") && unknown.output.isEmpty)
    }

    @Test("the sink killed with SIGKILL mid-run and restarted ends with exactly one row per hop")
    func sinkKillLosesAndDuplicatesNothing() async throws {
        let fleet = try SagaFleet(name: "audit-kill")
        try fleet.startAll()
        try fleet.startSink()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slips = try (1...200).map { index in
            try producer.order(["orderId": .string("A-\(index)"), "card": index % 5 == 0 ? .string(Ledger.declinedCard) : "4242-4242-4242-4242"])
        }
        let follower = try await producer.follow(slips)
        defer { follower.stop() }
        for slip in slips { try await producer.sender.send(slip) }
        _ = try await producer.collect(follower, count: 30, timeout: .seconds(60))
        await fleet.kill("audit-sink")
        try fleet.startSink()
        _ = try await producer.collect(follower, count: slips.count - 30, timeout: .seconds(120))

        let store = try AuditStore.openForReading(path: fleet.auditDB)
        for (index, slip) in slips.enumerated() {
            let timeline = try await Self.recordedTimeline(fleet, slip.id)
            let declined = (index + 1) % 5 == 0
            // Completed: four executes and the end. Declined: reserve, charge (faulted), undo reserve, the end.
            #expect(timeline.hops.count == (declined ? 4 : 5), "slip \(index + 1): \(timeline.hops.map(Row.init))")
            #expect(Set(timeline.hops.map(\.eventID)).count == timeline.hops.count)
        }
        #expect(try store.stats().events == slips.count * 5 - (slips.count / 5))
    }

    @Test("an event delivered twice adds no row")
    func duplicateEventsAddNoRows() async throws {
        let fleet = try SagaFleet(name: "audit-dup")
        try fleet.startAll()
        try fleet.startSink()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slip = try producer.order()
        let ended = try #require(try await producer.run([slip])[slip.id])
        let before = try await Self.recordedTimeline(fleet, slip.id)

        // The very same terminal event again, as a publisher retrying after a lost confirm would send it.
        var again = ended
        again.log = nil
        try await producer.transport.publish([
            OutgoingMessage(
                exchange: fleet.topology.eventsExchange, routingKey: ended.routingKey,
                body: [UInt8](try SlipCodec.makeEncoder().encode(again)), messageID: ended.id)
        ])
        // A later slip's end is recorded after the duplicate: the sink has consumed it by then.
        let later = try producer.order(["orderId": "T-2"])
        _ = try await producer.run([later])
        _ = try await Self.recordedTimeline(fleet, later.id)

        let after = try await Self.recordedTimeline(fleet, slip.id)
        #expect(after.hops == before.hops)
        #expect(after.slip.events == before.slip.events)
    }

    @Test("`slip audit stuck` finds a slip whose next processor is down, and not one that completed")
    func stuckFindsTheSlipWaitingForADownProcessor() async throws {
        let fleet = try SagaFleet(name: "audit-stuck")
        try fleet.startAll()
        try fleet.startSink()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let completed = try producer.order()
        _ = try await producer.run([completed])
        _ = try await Self.recordedTimeline(fleet, completed.id)

        _ = await fleet.stop("ship-order")
        let waiting = try producer.order(["orderId": "T-stuck"])
        try await producer.sender.send(waiting)

        var stuck: AuditStuckList?
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while ContinuousClock.now < deadline {
            let result = try await fleet.slip(["audit", "stuck", "--older-than", "1s", "--json"])
            try #require(result.status == 0, "\(result.errors)")
            let list = try SlipCodec.makeDecoder().decode(AuditStuckList.self, from: Data(result.output.utf8))
            if list.slips.contains(where: { $0.slipID == waiting.id }) {
                stuck = list
                break
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        let found = try #require(stuck, "the slip waiting for ship-order was never reported stuck")
        let entry = try #require(found.slips.first { $0.slipID == waiting.id })
        #expect(entry.lastStep == "charge-card" && entry.state == .running)
        #expect(!found.slips.contains { $0.slipID == completed.id })
    }

    /// `slip audit` on a database written here (no broker): what the commands print.
    static func slipOnDatabase(_ path: String, _ arguments: [String]) async throws -> (status: Int32, output: String, errors: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["SLIPWAY_AUDIT_DB"] = path
        return try await runToEnd(try Binaries.path("slip"), arguments, environment: environment)
    }

    @Test("`slip audit show`'s span is first event to last for a finished slip as for a running one")
    func showSpanIsTheSameForFinishedAndRunning() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-audit-span-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("audit.sqlite").path
        let store = try AuditStore(path: path)
        // Created 10 minutes before its first event: a span from creation would say 10m 4s, not 4s.
        let created = Date(timeIntervalSince1970: 1_790_000_000)
        let first = created.addingTimeInterval(600)
        func hop(_ slipID: String, _ step: String, _ sequence: Int, at: Date, state: SlipState = .running) -> SlipEvent {
            SlipEvent(
                slipID: slipID, template: "order", kind: .execute, step: step, sequence: sequence, attempt: 1,
                outcome: "completed", state: state, processor: "h:1", startedAt: at, durationMicros: 1_000, at: at)
        }
        let finished = [
            hop("finished", "a", 0, at: first), hop("finished", "b", 1, at: first.addingTimeInterval(4), state: .completed),
            SlipEvent(
                slipID: "finished", template: "order", kind: .terminal, step: "b", sequence: 1, attempt: 1,
                outcome: "completed", state: .completed, processor: "h:1", at: first.addingTimeInterval(4),
                createdAt: created),
        ]
        let running = [hop("running", "a", 0, at: first), hop("running", "b", 1, at: first.addingTimeInterval(4))]
        try await store.record(finished + running)

        for slipID in ["finished", "running"] {
            let shown = try await Self.slipOnDatabase(path, ["audit", "show", slipID])
            #expect(shown.status == 0, "\(shown.errors)")
            let events = try #require(shown.output.split(separator: "\n").first { $0.hasPrefix("events") })
            #expect(events.hasSuffix("(4s)") || events.hasSuffix("(4.00s)"), "\(slipID): \(events)")
        }
    }

    @Test("`slip audit stuck` shows the queue a slip waits on, and says when that is a guess")
    func stuckShowsTheQueueWaitedOn() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-audit-stuck-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("audit.sqlite").path
        let store = try AuditStore(path: path)
        let at = Date().addingTimeInterval(-3_600)
        func hop(_ slipID: String, _ step: String, _ sequence: Int, _ outcome: String, attempt: Int = 1) -> SlipEvent {
            SlipEvent(
                slipID: slipID, template: "order", kind: .execute, step: step, sequence: sequence, attempt: attempt,
                outcome: outcome, state: .running, processor: "h:1", startedAt: at, durationMicros: 1_000, at: at)
        }
        try await store.record([
            hop("retrying", "reserve-stock", 0, "completed"), hop("retrying", "charge-card", 1, "retried", attempt: 2),
            hop("stalled", "reserve-stock", 0, "completed"),
        ])

        let stuck = try await Self.slipOnDatabase(path, ["audit", "stuck", "--older-than", "10m"])
        #expect(stuck.status == 0, "\(stuck.errors)")
        let lines = stuck.output.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("SLIP") && $0.contains("WAITS ON") }, "\(stuck.output)")
        #expect(lines.contains { $0.hasPrefix("retrying") && $0.contains("charge-card.execute ") }, "\(stuck.output)")
        // After reserve-stock: another slip of the template went on to charge-card, so that is the (marked) guess.
        #expect(lines.contains { $0.hasPrefix("stalled") && $0.contains("charge-card.execute?") }, "\(stuck.output)")
        let json = try await Self.slipOnDatabase(path, ["audit", "stuck", "--json"])
        let list = try SlipCodec.makeDecoder().decode(AuditStuckList.self, from: Data(json.output.utf8))
        #expect(list.slips.first { $0.slipID == "stalled" }?.waitingOn?.certain == false)
    }
}

extension Producer {
    /// Declares and binds the sink's queue as the sink does, so that events published before the sink process has
    /// done so itself are kept for it (until it does, the broker drops them: issue 15's defect 7).
    func bindAuditQueue() async throws {
        try await transport.declareTopicExchange(topology.eventsExchange)
        try await transport.declareQueue(topology.auditQueue)
        try await transport.bindQueue(topology.auditQueue, exchange: topology.eventsExchange, bindingKey: "#")
    }
}
