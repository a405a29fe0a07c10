import Foundation
import Testing

@testable import SlipwayCore

@Suite("Slip transitions")
struct SlipTransitionTests {
    @Test("completing steps pushes an undo record only for the steps that returned data, newest last")
    func undoRecordsOnlyForData() {
        var slip = orderSlip(steps: ["reserve-stock", "validate-address", "charge-card", "ship-order"])
        slip.complete(returning: ["reservationId": "res-77"])
        slip.complete(returning: nil)
        slip.complete(returning: ["chargeId": "ch-9001"])

        #expect(slip.compensations.map(\.step) == ["reserve-stock", "charge-card"])
        #expect(slip.compensations.map(\.sequence) == [0, 2])
        #expect(slip.compensations.map(\.address) == ["slipway.reserve-stock.compensate", "slipway.charge-card.compensate"])
        #expect(slip.compensations.last?.data == ["chargeId": "ch-9001"])
        #expect(slip.itinerary.map(\.step) == ["ship-order"])
        #expect(slip.log.map(\.step) == ["reserve-stock", "validate-address", "charge-card"])
        #expect(slip.state == .running)
    }

    @Test("a completed step's compensateTimeoutMs goes into its undo record, where the compensate hop reads it")
    func compensateTimeoutTravelsInTheRecord() {
        var slip = orderSlip(steps: ["reserve-stock", "charge-card", "ship-order"])
        slip.itinerary[0].compensateTimeoutMs = 1_500
        slip.complete(returning: ["reservationId": "res-77"])
        slip.complete(returning: ["chargeId": "ch-9001"])
        #expect(slip.compensations.map(\.timeoutMs) == [1_500, nil])
    }

    @Test("a step that returns null as its data still gets an undo record: only no data means no undo")
    func nullDataIsData() {
        var slip = orderSlip(steps: ["reserve-stock", "ship-order"])
        slip.complete(returning: .null)
        #expect(slip.compensations.count == 1)
        #expect(slip.compensations[0].data == .null)
    }

    @Test("completing the last step completes the slip, keeping its undo records")
    func lastStepCompletes() {
        var slip = orderSlip(steps: ["reserve-stock", "notify-customer"])
        slip.complete(returning: ["reservationId": "res-77"])
        slip.complete(returning: nil)
        #expect(slip.state == .completed)
        #expect(slip.state.isTerminal)
        #expect(slip.itinerary.isEmpty)
        #expect(slip.nextHop == nil)
        #expect(slip.compensations.count == 1)
        #expect(slip.sequence == 2)
    }

    @Test("completing a step removes the variables it names, then merges its updates")
    func variables() {
        var slip = orderSlip()
        slip.variables = ["orderId": "ord-1001", "draft": true, "total": 10]
        slip.complete(returning: nil, variables: ["total": 12, "chargeId": "ch-1"], removing: ["draft", "total"])
        #expect(slip.variables == ["orderId": "ord-1001", "total": 12, "chargeId": "ch-1"])
    }

    @Test("a fault with no undo record on the stack leaves the slip faulted")
    func faultWithEmptyStack() {
        var slip = orderSlip()
        slip.complete(returning: nil)
        slip.attempt = 3
        slip.faultStep(reason: "card declined", entry: entry(for: slip, .faulted, reason: "card declined"))
        #expect(slip.state == .faulted)
        #expect(slip.state.isTerminal)
        #expect(slip.fault == Fault(step: "charge-card", sequence: 1, reason: "card declined", attempts: 3))
        #expect(slip.nextHop == nil)
        #expect(slip.sequence == 2 && slip.attempt == 1)
    }

    @Test("a fault after steps that left undo records turns the slip to compensating, newest record next")
    func faultWithRecords() {
        var slip = orderSlip(steps: ["reserve-stock", "charge-card", "ship-order"])
        slip.complete(returning: ["reservationId": "res-77"])
        slip.complete(returning: ["chargeId": "ch-9001"])
        slip.faultStep(reason: "undeliverable", entry: entry(for: slip, .faulted, reason: "undeliverable"))
        #expect(slip.state == .compensating)
        #expect(!slip.state.isTerminal)
        #expect(slip.fault == Fault(step: "ship-order", sequence: 2, reason: "undeliverable", attempts: 1))
        #expect(slip.nextHop?.kind == .compensate)
        #expect(slip.nextHop?.step == "charge-card")
        #expect(slip.itinerary.first?.step == "ship-order", "the faulted step stays at the itinerary's head")
        #expect(throws: Never.self) { try slip.validate() }
    }

    @Test("compensations pop newest first, and the slip ends compensated")
    func compensationsPopNewestFirst() {
        var slip = orderSlip(steps: ["reserve-stock", "charge-card", "ship-order"])
        slip.complete(returning: ["reservationId": "res-77"])
        slip.complete(returning: ["chargeId": "ch-9001"])
        slip.faultStep(reason: "undeliverable", entry: entry(for: slip, .faulted))

        var undone: [String] = []
        while slip.state == .compensating, let next = slip.nextHop {
            undone.append(next.step)
            slip.completeCompensation(entry: entry(for: slip, .completed))
        }
        #expect(undone == ["charge-card", "reserve-stock"])
        #expect(slip.state == .compensated)
        #expect(slip.compensations.isEmpty)
        #expect(slip.fault?.step == "ship-order", "the fault stays, to say why the slip was compensated")
        #expect(slip.log.suffix(2).map(\.kind) == [.compensate, .compensate])
        #expect(slip.sequence == 5)
    }

    @Test("a compensation that fails for good parks the slip as compensation-failed, keeping its record and fault")
    func failCompensation() {
        var slip = orderSlip(steps: ["reserve-stock", "ship-order"])
        slip.complete(returning: ["reservationId": "res-77"])
        slip.faultStep(reason: "undeliverable", entry: entry(for: slip, .faulted))
        slip.attempt = 5
        slip.failCompensation(reason: "warehouse unreachable", entry: entry(for: slip, .failed, reason: "warehouse unreachable"))
        #expect(slip.state == .compensationFailed)
        #expect(slip.state.isTerminal)
        #expect(slip.compensations.map(\.step) == ["reserve-stock"])
        #expect(slip.fault?.reason == "undeliverable")
        #expect(slip.nextHop == nil)
        #expect(slip.sequence == 3 && slip.attempt == 1)
    }

    @Test("a compensation failure on a slip without a fault becomes its fault")
    func failCompensationWithoutFault() {
        var slip = orderSlip(steps: ["reserve-stock", "ship-order"])
        slip.complete(returning: ["reservationId": "res-77"])
        slip.state = .compensating
        slip.attempt = 4
        slip.failCompensation(reason: "gave up", entry: entry(for: slip, .failed, reason: "gave up"))
        #expect(slip.fault == Fault(step: "reserve-stock", sequence: 1, reason: "gave up", attempts: 4))
    }

    @Test("a compensation-failed slip resumes its walk-back where it stopped, from attempt 1")
    func resumeCompensation() {
        var slip = orderSlip(steps: ["reserve-stock", "charge-card", "ship-order"])
        slip.complete(returning: ["reservationId": "res-77"])
        slip.complete(returning: ["chargeId": "ch-9001"])
        slip.faultStep(reason: "undeliverable", entry: entry(for: slip, .faulted))
        slip.completeCompensation(entry: entry(for: slip, .completed))
        slip.failCompensation(reason: "warehouse unreachable", entry: entry(for: slip, .failed))
        let sequence = slip.sequence

        slip.resumeCompensation()
        #expect(slip.state == .compensating)
        #expect(slip.attempt == 1)
        #expect(slip.sequence == sequence)
        #expect(slip.nextHop?.step == "reserve-stock")
        slip.completeCompensation(entry: entry(for: slip, .completed))
        #expect(slip.state == .compensated)
    }

    @Test("resuming a slip that is not compensation-failed changes nothing", arguments: [
        SlipState.running, .compensating, .completed, .compensated, .faulted, .terminated,
    ])
    func resumeIsANoOpElsewhere(_ state: SlipState) {
        var slip = orderSlip()
        slip.complete(returning: ["reservationId": "res-77"])
        slip.state = state
        slip.attempt = 3
        let before = slip
        slip.resumeCompensation()
        #expect(slip == before)
    }

    @Test("the attempt counts the retries of one hop and starts again at 1 at every new hop")
    func attempts() {
        var slip = orderSlip()
        #expect(slip.attempt == 1)
        slip.retryHop(entry: entry(for: slip, .retried, reason: "timeout"))
        slip.retryHop(entry: entry(for: slip, .retried, reason: "timeout"))
        #expect(slip.attempt == 3)
        #expect(slip.log.map(\.attempt) == [1, 2])
        slip.complete(returning: ["reservationId": "res-77"])
        #expect(slip.log.last?.attempt == 3)
        #expect(slip.attempt == 1)
        slip.retryHop(entry: entry(for: slip, .retried))
        slip.faultStep(reason: "declined", entry: entry(for: slip, .faulted))
        #expect(slip.fault?.attempts == 2)
        #expect(slip.attempt == 1)
        slip.retryHop(entry: entry(for: slip, .retried))
        #expect(slip.attempt == 2)
        slip.completeCompensation(entry: entry(for: slip, .completed))
        #expect(slip.attempt == 1)
    }

    @Test("the sequence advances once per hop, never per attempt")
    func sequences() {
        var slip = orderSlip()
        slip.retryHop(entry: entry(for: slip, .retried))
        #expect(slip.sequence == 0)
        slip.complete(returning: ["reservationId": "res-77"])
        #expect(slip.sequence == 1)
        slip.retryHop(entry: entry(for: slip, .retried))
        slip.retryHop(entry: entry(for: slip, .retried))
        #expect(slip.sequence == 1)
        slip.faultStep(reason: "declined", entry: entry(for: slip, .faulted))
        #expect(slip.sequence == 2)
        slip.completeCompensation(entry: entry(for: slip, .completed))
        #expect(slip.sequence == 3)
        #expect(slip.log.map(\.sequence) == [0, 0, 1, 1, 1, 2])
    }

    @Test("the next hop is the itinerary's head while running and the top undo record while compensating")
    func nextHop() {
        var slip = orderSlip()
        #expect(slip.nextHop?.kind == .execute)
        #expect(slip.nextHop?.step == "reserve-stock")
        slip.complete(returning: ["reservationId": "res-77"])
        #expect(slip.nextHop?.step == "charge-card")
        slip.faultStep(reason: "declined", entry: entry(for: slip, .faulted))
        #expect(slip.nextHop?.kind == .compensate)
        #expect(slip.nextHop?.step == "reserve-stock")
    }

    @Test("a slip stays valid through a whole walk forward and back")
    func staysValid() throws {
        var slip = orderSlip()
        try slip.validate()
        slip.complete(returning: ["reservationId": "res-77"])
        try slip.validate()
        slip.retryHop(entry: entry(for: slip, .retried))
        try slip.validate()
        slip.faultStep(reason: "declined", entry: entry(for: slip, .faulted))
        try slip.validate()
        slip.completeCompensation(entry: entry(for: slip, .completed))
        try slip.validate()
        let codec = SlipCodec()
        #expect(try codec.decode(try codec.encode(slip)) == slip)
    }
}

@Suite("Log carried by the slip")
struct CarriedLogTests {
    @Test("a slip carries only its newest hops in its log, with their sequences, however many steps ran")
    func newestHopsOnly() {
        let steps = (1...25).map { ItineraryStep(step: "s\($0)") }
        var slip = Slip(template: "long", itinerary: steps)
        for index in 0..<25 {
            slip.completeStep(
                compensationData: nil, compensateAddress: "q", variableUpdates: [:],
                entry: LogEntry(
                    sequence: index, step: "s\(index + 1)", kind: .execute, outcome: .completed, attempt: 1,
                    startedAt: Date(), durationMicros: 1, processor: "p"))
        }
        #expect(slip.state == .completed)
        #expect(slip.sequence == 25)
        #expect(slip.log.count == Slip.carriedLogEntries)
        #expect(slip.log.map(\.sequence) == Array((25 - Slip.carriedLogEntries)..<25))
    }
}
