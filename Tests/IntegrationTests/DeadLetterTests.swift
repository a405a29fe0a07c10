import ExampleLedger
import Foundation
import Slipway
import SlipwayTransport
import Testing

/// `slip dlq` against a real RabbitMQ, with the example processors as processes parking real messages.
@Suite("slip dlq: list, show, replay and drop parked messages")
struct DeadLetterTests {
    @Test("a garbage body and a misrouted slip appear in `slip dlq list` with their codes and queue, and listing again shows the same")
    func listShowsParkedWithoutConsuming() async throws {
        let fleet = try SagaFleet(name: "dlq-list")
        try fleet.start("ship-order")
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let queue = fleet.topology.executeQueue(step: "ship-order")
        try await producer.transport.declareQueue(queue)
        let garbage = Array("{not json\u{1}".utf8)
        let misrouted = try producer.order()  // Its next hop is reserve-stock, not ship-order.
        try await producer.transport.publish([
            .toQueue(queue, body: garbage), .toQueue(queue, body: try SlipCodec().encode(misrouted)),
        ])

        let first = try await waitForParked(fleet, count: 2)
        #expect(Set(first.map(\.reasonCode)) == ["malformed", "misrouted"])
        #expect(first.allSatisfy { $0.originalQueue == queue && !$0.parkedId.isEmpty && $0.parkedAt != nil })
        #expect(first.first { $0.reasonCode == "misrouted" }?.slipId == misrouted.id)
        #expect(first.first { $0.reasonCode == "malformed" }?.size == garbage.count)

        // Listing read every message and gave it back: a second listing (text this time) and a third see them all.
        let text = try await fleet.slip(["dlq", "list"])
        #expect(text.status == 0, "\(text.errors)")
        for entry in first { #expect(text.output.contains(entry.parkedId)) }
        let again = try await list(fleet)
        #expect(Set(again.map(\.parkedId)) == Set(first.map(\.parkedId)), "listing must not consume")
        #expect(try await list(fleet, ["--limit", "1"]).count == 1)

        // show: headers and the body, JSON pretty-printed when it parses, escaped text otherwise.
        let misroutedID = try #require(first.first { $0.reasonCode == "misrouted" }?.parkedId)
        let shown = try await fleet.slip(["dlq", "show", misroutedID, "--json"])
        #expect(shown.status == 0, "\(shown.errors)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(shown.output.utf8)) as? [String: Any])
        #expect((object["headers"] as? [String: String])?[ParkedHeaders.reasonCode] == "misrouted")
        #expect((object["body"] as? [String: Any])?["id"] as? String == misrouted.id)
        let garbageID = try #require(first.first { $0.reasonCode == "malformed" }?.parkedId)
        let shownText = try await fleet.slip(["dlq", "show", garbageID])
        #expect(shownText.status == 0)
        #expect(shownText.output.contains("{not json\\u{01}"), "\(shownText.output)")
        #expect(try await list(fleet).count == 2, "show must not consume")
    }

    @Test("`slip dlq drop <id>` removes exactly that message, and an unknown id is a one-line error with exit status 2")
    func dropRemovesExactlyOne() async throws {
        let fleet = try SagaFleet(name: "dlq-drop")
        try fleet.start("charge-card")
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let queue = fleet.topology.executeQueue(step: "charge-card")
        try await producer.transport.declareQueue(queue)
        try await producer.transport.publish((1...3).map { .toQueue(queue, body: Array("garbage \($0)".utf8)) })
        let parked = try await waitForParked(fleet, count: 3)

        let dropped = try await fleet.slip(["dlq", "drop", parked[1].parkedId])

        #expect(dropped.status == 0, "\(dropped.errors)")
        #expect(dropped.output.contains("dropped \(parked[1].parkedId)"))
        let left = try await list(fleet)
        #expect(Set(left.map(\.parkedId)) == [parked[0].parkedId, parked[2].parkedId])

        let unknown = try await fleet.slip(["dlq", "drop", "no-such-id"])
        #expect(unknown.status == 2)
        #expect(unknown.errors.hasPrefix("slip: ") && unknown.errors.split(separator: "\n").count == 1, "\(unknown.errors)")
        #expect(try await fleet.slip(["dlq", "drop", "--all"]).status != 0, "--all without --yes must refuse")
        #expect(try await list(fleet).count == 2)
        #expect(try await fleet.slip(["dlq", "drop", "--all", "--yes"]).status == 0)
        #expect(try await list(fleet).isEmpty)
    }

    /// What this proves: replay really re-runs a parked compensation. The warehouse's table is renamed away, so the
    /// reserve-stock compensation throws on every attempt and the slip is parked as compensation-failed. Once the table
    /// is back (the cause fixed), `slip dlq replay <id>` sends the parked slip to the compensate queue; the processor
    /// resumes the walk-back, releases the reservation and the slip ends compensated, leaving the queue empty.
    @Test("a compensation-failed slip replayed after its cause is fixed finishes its walk-back and ends compensated")
    func compensationFailedReplays() async throws {
        let fleet = try SagaFleet(name: "dlq-comp")
        try fleet.start("reserve-stock")
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slip = try await parkFailedCompensation(fleet, producer)
        let parked = try await waitForParked(fleet, count: 1, timeout: .seconds(90))
        #expect(parked[0].reasonCode == "compensation-failed")
        #expect(parked[0].reason?.contains("no such table") == true, "parked because the warehouse was offline: \(parked[0].reason ?? "-")")
        #expect(parked[0].slipId == slip.id)
        #expect(parked[0].originalQueue == fleet.topology.compensateQueue(step: "reserve-stock"))

        try await warehouse(fleet, online: true)
        let follower = try await producer.follow([slip])
        defer { follower.stop() }
        let replay = try await fleet.slip(["dlq", "replay", parked[0].parkedId, "--json"])

        #expect(replay.status == 0, "\(replay.errors)")
        let replayed = try JSONDecoder().decode([Replayed].self, from: Data(replay.output.utf8))
        #expect(replayed.map(\.parkedId) == [parked[0].parkedId])
        #expect(replayed.first?.queue == fleet.topology.compensateQueue(step: "reserve-stock"))
        let end = await follower.next(timeout: .seconds(60))
        #expect(end?.state == .compensated)
        #expect(try await fleet.reservations(slipID: slip.id) == .released)
        #expect(try await fleet.available(sku: "widget") == Warehouse.initialStock["widget"])
        #expect(try await list(fleet).isEmpty)
    }

    /// What this proves: `replay --all` takes every replayed message out of the dead-letter queue. The one whose cause
    /// was fixed (a compensation-failed slip) finishes; the one that still cannot be processed (a slip misrouted to
    /// ship-order, which is where replay sends it back) is parked again, under a new parked id: replay re-delivered it.
    @Test("`slip dlq replay --all` empties the dead-letter queue of what it replayed; only what fails again comes back")
    func replayAllEmpties() async throws {
        let fleet = try SagaFleet(name: "dlq-all")
        try fleet.start("reserve-stock")
        try fleet.start("ship-order")
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let failed = try await parkFailedCompensation(fleet, producer)
        // A valid slip whose next hop is charge-card, published to ship-order's queue.
        var misrouted = try producer.order(["orderId": "T-misrouted"])
        misrouted.completeStep(
            compensationData: nil, compensateAddress: fleet.topology.compensateQueue(step: "reserve-stock"),
            variableUpdates: [:], entry: logEntry(misrouted, step: "reserve-stock", kind: .execute, outcome: .completed))
        let shipQueue = fleet.topology.executeQueue(step: "ship-order")
        try await producer.transport.declareQueue(shipQueue)
        try await producer.transport.publish([.toQueue(shipQueue, body: try SlipCodec().encode(misrouted))])
        let before = try await waitForParked(fleet, count: 2, timeout: .seconds(90))
        #expect(Set(before.map(\.reasonCode)) == ["compensation-failed", "misrouted"])
        let misroutedBefore = try #require(before.first { $0.reasonCode == "misrouted" })

        try await warehouse(fleet, online: true)
        let follower = try await producer.follow([failed])
        defer { follower.stop() }
        let replay = try await fleet.slip(["dlq", "replay", "--all"])

        #expect(replay.status == 0, "\(replay.errors)")
        for entry in before { #expect(replay.output.contains("replayed \(entry.parkedId)"), "\(replay.output)") }
        #expect(await follower.next(timeout: .seconds(60))?.state == .compensated)
        let after = try await waitForParked(fleet, count: 1)
        #expect(after.count == 1)
        #expect(after.first?.reasonCode == "misrouted" && after.first?.slipId == misrouted.id)
        #expect(after.first?.originalQueue == shipQueue)
        #expect(after.first?.parkedId != misroutedBefore.parkedId, "parked again, as a new parked message")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await list(fleet).count == 1, "nothing else comes back")
    }

    /// What this proves: a body that names a slip but is not a valid one (here: no itinerary) is parked under that
    /// slip's id. The processor puts the id in the parked message's headers and in the parked event, which a producer
    /// following the slip (as `slip send --wait` does) receives; the audit sink records the park as the slip's state.
    @Test("a slip without an itinerary is parked under its slip id: headers, the parked event and the audit trail name it")
    func invalidSlipIsParkedUnderItsID() async throws {
        let fleet = try SagaFleet(name: "dlq-invalid")
        try fleet.start("reserve-stock")
        try fleet.startSink()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        try await producer.bindAuditQueue()
        let slip = try producer.order(["orderId": "T-no-itinerary"])
        var object = try #require(
            try JSONSerialization.jsonObject(with: Data(try SlipCodec().encode(slip))) as? [String: Any])
        object["itinerary"] = nil
        let body = Array(try JSONSerialization.data(withJSONObject: object))
        let follower = try await SlipEventFollower.endEvents(
            of: [slip.id], transport: producer.transport, topology: fleet.topology)
        defer { follower.stop() }
        let queue = fleet.topology.executeQueue(step: "reserve-stock")
        try await producer.transport.declareQueue(queue)
        try await producer.transport.publish([.toQueue(queue, body: body)])

        let event = try #require(await follower.next(timeout: .seconds(30)), "no parked event for slip \(slip.id)")
        #expect(event.kind == .parked && event.slipID == slip.id && event.template == "order-fulfillment")
        #expect(event.outcome == "malformed" || event.outcome == "invalid", "\(event.outcome)")
        let parked = try await waitForParked(fleet, count: 1)
        let shown = try await fleet.slip(["dlq", "show", parked[0].parkedId, "--json"])
        let headers = try #require(
            (try JSONSerialization.jsonObject(with: Data(shown.output.utf8)) as? [String: Any])?["headers"] as? [String: String])
        #expect(headers[ParkedHeaders.slipID] == slip.id)
        let timeline = try await AuditTests.recordedPark(fleet, slip.id)
        #expect(timeline.slip.template == "order-fulfillment")
        let human = try await fleet.slip(["audit", "show", slip.id])
        #expect(human.output.contains("parked (\(event.outcome))"), "\(human.output)")
    }

    /// What this proves: `show` (and replay, drop) take a unique start of a parked id, as `slip audit show` takes one
    /// of a slip id; a start shared by several is refused with the candidates named, and nothing is consumed.
    @Test("`slip dlq show` takes a unique start of a parked id; an ambiguous one is refused, naming the candidates")
    func showTakesAUniquePrefix() async throws {
        let fleet = try SagaFleet(name: "dlq-prefix")
        let producer = try Producer(fleet: fleet)
        let queue = fleet.topology.deadLetterQueue
        try await producer.transport.declareQueue(queue)
        // Parked ids chosen to share a start (real ones are UUIDs): as a processor parks them, headers and all.
        try await producer.transport.publish(["feed0001-aaaa", "feed0002-bbbb", "cafe0003-cccc"].map { id in
            .toQueue(
                queue, body: Array("body of \(id)".utf8),
                headers: [ParkedHeaders.parkedID: id, ParkedHeaders.reasonCode: "malformed",
                          ParkedHeaders.originalQueue: fleet.topology.executeQueue(step: "x")])
        })
        _ = try await waitForParked(fleet, count: 3)

        let unique = try await fleet.slip(["dlq", "show", "feed0001"])
        #expect(unique.status == 0, "\(unique.errors)")
        #expect(unique.output.contains("parked id     feed0001-aaaa"), "\(unique.output)")
        #expect(unique.output.contains("body of feed0001-aaaa"))
        let json = try await fleet.slip(["dlq", "show", "cafe", "--json"])
        #expect(json.status == 0 && json.output.contains(#""parkedId":"cafe0003-cccc""#), "\(json.output)")

        let ambiguous = try await fleet.slip(["dlq", "show", "feed"])
        #expect(ambiguous.status == 2)
        #expect(ambiguous.errors.contains("feed0001-aaaa") && ambiguous.errors.contains("feed0002-bbbb"), "\(ambiguous.errors)")
        #expect(ambiguous.errors.split(separator: "\n").count == 1)
        #expect(try await fleet.slip(["dlq", "show", "fee"]).status == 2, "a start shorter than 4 characters names nothing")
        #expect(try await list(fleet).count == 3, "show consumes nothing")
        #expect(try await fleet.slip(["dlq", "drop", "feed0002"]).output.contains("dropped feed0002-bbbb"))
        #expect(Set(try await list(fleet).map(\.parkedId)) == ["feed0001-aaaa", "cafe0003-cccc"])
    }

    // MARK: Helpers

    struct Entry: Decodable {
        var parkedId: String
        var reasonCode: String?
        var reason: String?
        var originalQueue: String?
        var slipId: String?
        var parkedAt: String?
        var size: Int
    }

    struct Replayed: Decodable {
        var parkedId: String
        var reasonCode: String?
        var slipId: String?
        var queue: String
    }

    private func list(_ fleet: SagaFleet, _ extra: [String] = []) async throws -> [Entry] {
        let result = try await fleet.slip(["dlq", "list", "--json"] + extra)
        guard result.status == 0 else { throw HarnessError("slip dlq list failed (\(result.status)): \(result.errors)") }
        return try JSONDecoder().decode([Entry].self, from: Data(result.output.utf8))
    }

    /// Lists until `count` messages are parked (they are parked asynchronously by the processors).
    private func waitForParked(_ fleet: SagaFleet, count: Int, timeout: Duration = .seconds(30)) async throws -> [Entry] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let entries = try await list(fleet)
            if entries.count >= count || ContinuousClock.now >= deadline {
                try #require(entries.count == count, "expected \(count) parked messages, found \(entries.count)")
                return entries
            }
            try await Task.sleep(for: .milliseconds(300))
        }
    }

    private func logEntry(_ slip: Slip, step: String, kind: HopKind, outcome: HopOutcome, reason: String? = nil) -> LogEntry {
        LogEntry(
            sequence: slip.sequence, step: step, kind: kind, outcome: outcome, attempt: 1, startedAt: Date(),
            durationMicros: 1, processor: "test", reason: reason)
    }

    /// Takes the warehouse's reservation table (in reserve-stock's hop record file) away, so that the compensation
    /// throws, or brings it back.
    private func warehouse(_ fleet: SagaFleet, online: Bool) async throws {
        try await sqlite(
            fleet,
            online
                ? "ALTER TABLE reservation_offline RENAME TO reservation" : "ALTER TABLE reservation RENAME TO reservation_offline")
    }

    private func sqlite(_ fleet: SagaFleet, _ sql: String) async throws {
        let result = try await runToEnd(
            "/usr/bin/env", ["sqlite3", "-cmd", ".timeout 10000", fleet.warehouseFile, sql], timeout: .seconds(30))
        guard result.status == 0 else { throw HarnessError("sqlite3 could not run '\(sql)'") }
    }

    /// A slip that reserved stock (in reserve-stock's own tables, as its hop would have) and then faulted at
    /// charge-card, published to reserve-stock's compensate queue while the warehouse is offline: every compensation
    /// attempt throws and the processor parks the slip as compensation-failed. The warehouse stays offline until the
    /// caller brings it back. reserve-stock must be started: its migration creates the tables.
    private func parkFailedCompensation(_ fleet: SagaFleet, _ producer: Producer) async throws -> Slip {
        var slip = try producer.order(["orderId": "T-compensation"])
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while try await fleet.available(sku: "widget") == nil {
            guard ContinuousClock.now < deadline else { throw HarnessError("reserve-stock never created its tables") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let reservation = UUID().uuidString.lowercased()
        try await sqlite(
            fleet,
            """
            BEGIN; UPDATE stock SET available = available - 1 WHERE sku = 'widget';
            INSERT INTO reservation (id, slip_id, sku, quantity) VALUES ('\(reservation)', '\(slip.id)', 'widget', 1); COMMIT;
            """)
        slip.completeStep(
            compensationData: ["reservationId": .string(reservation)],
            compensateAddress: fleet.topology.compensateQueue(step: "reserve-stock"),
            variableUpdates: ["reservationId": .string(reservation)],
            entry: logEntry(slip, step: "reserve-stock", kind: .execute, outcome: .completed))
        slip.faultStep(
            reason: "card declined (by the test)",
            entry: logEntry(slip, step: "charge-card", kind: .execute, outcome: .faulted, reason: "card declined (by the test)"))
        try await warehouse(fleet, online: false)
        let queue = fleet.topology.compensateQueue(step: "reserve-stock")
        try await producer.transport.declareQueue(queue)
        try await producer.sender.transport.publish([
            .toQueue(queue, body: try SlipCodec().encode(slip), correlationID: slip.id, contentType: SlipCodec.contentType)
        ])
        return slip
    }
}
