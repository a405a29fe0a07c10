import Foundation
import Synchronization
import SlipwayCore
import SlipwayStores
import SlipwayTransport
import Testing

@testable import Slipway

/// The planner decides every hop without I/O: these check each decision from its inputs alone.
@Suite("Hop planner: what a hop does, without I/O")
struct HopPlannerTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let timing = HopTiming(startedAt: now, durationMicros: 1_234)
    let topology = Topology()
    let codec = SlipCodec()

    func planner(step: String = "charge", configure: (inout ProcessorConfiguration) -> Void = { _ in }) -> HopPlanner {
        var configuration = ProcessorConfiguration()
        configuration.instance = "host:1"
        configure(&configuration)
        let counter = Counter()
        return HopPlanner(step: step, configuration: configuration, codec: codec, newID: { counter.next() })
    }

    /// A running slip whose head is `charge`, after `reserve` completed with an undo.
    func slip(steps: [ItineraryStep] = [ItineraryStep(step: "charge"), ItineraryStep(step: "ship")]) -> Slip {
        var slip = Slip(
            id: "s-1", template: "order", itinerary: [ItineraryStep(step: "reserve")] + steps, createdAt: Self.now)
        slip.completeStep(
            compensationData: ["sku": "a"], compensateAddress: topology.compensateQueue(step: "reserve"),
            variableUpdates: [:], entry: entry(step: "reserve"))
        return slip
    }

    func entry(step: String) -> LogEntry {
        LogEntry(
            sequence: 0, step: step, kind: .execute, outcome: .completed, attempt: 1, startedAt: Self.now,
            durationMicros: 1, processor: "host:0")
    }

    func decoded(_ message: OutgoingMessage) throws -> Slip { try codec.decode(message.body) }

    func arrival(_ kind: HopKind, _ slip: Slip) throws -> HopPlanner.Arrival {
        HopPlanner.Arrival(
            kind: kind, body: try codec.encode(slip),
            headers: [SigningKeys.keyIDHeader: "k1", SigningKeys.signatureHeader: "sig", "other": "x"])
    }

    // MARK: After the handler

    @Test("a completed step records `completed`, forwards the slip to the next step's queue and keeps its undo")
    func completed() throws {
        let plan = try planner().plan(
            slip(), kind: .execute, result: .executed(.completed(variables: ["charge": "c-9"], compensation: ["c": 1])),
            timing: Self.timing, at: Self.now, random: 0)
        #expect(plan.disposition == .record(.completed))
        #expect(plan.queues == [QueueDeclaration("slipway.ship.execute")])
        let message = try #require(plan.messages.first)
        #expect(plan.messages.count == 1 && message.routingKey == "slipway.ship.execute")
        let next = try decoded(message)
        #expect(next.sequence == 2 && next.attempt == 1 && next.state == .running)
        #expect(next.variables["charge"] == "c-9")
        #expect(next.compensations.last?.address == "slipway.charge.compensate")
        let logged = try #require(next.log.last)
        #expect(logged.step == "charge" && logged.outcome == .completed && logged.durationMicros == 1_234)
        #expect(plan.hopEvent?.exchange == topology.eventsExchange)
        #expect(plan.outgoing.count == 2 && plan.outgoing.first == plan.hopEvent, "the record keeps the event first")
    }

    @Test("a step that asks the slip to wait sends it through a delay queue, declared with its wait and its target")
    func continueAfter() throws {
        let plan = try planner().plan(
            slip(), kind: .execute, result: .executed(.completed(continueAfter: .milliseconds(1_500))),
            timing: Self.timing, at: Self.now, random: 0)
        let queue = try #require(plan.queues.first)
        let wait = DelayGrid.level(forMs: 1_500)
        #expect(wait >= 1_500)
        #expect(queue.name == topology.delayQueue(for: "slipway.ship.execute", delayMs: 1_500))
        #expect(queue.arguments == .delay(wait, thenTo: "slipway.ship.execute"))
        #expect(plan.messages.first?.routingKey == queue.name)
        #expect(try decoded(plan.messages[0]).log.last?.reason == "the next step waits 1500 ms")
    }

    @Test("the last step completed: the slip ends with a terminal event and nothing to declare")
    func lastStep() throws {
        let plan = try planner().plan(
            slip(steps: [ItineraryStep(step: "charge")]), kind: .execute, result: .executed(.completed),
            timing: Self.timing, at: Self.now, random: 0)
        #expect(plan.disposition == .record(.completed))
        #expect(plan.queues.isEmpty)
        #expect(plan.messages.map(\.routingKey) == [topology.terminalRoutingKey(state: .completed, slipID: "s-1")])
    }

    @Test("a business fault records `faulted` and sends the slip to the newest undo")
    func faulted() throws {
        let plan = try planner().plan(
            slip(), kind: .execute, result: .executed(.faulted(reason: "card declined")), timing: Self.timing,
            at: Self.now, random: 0)
        #expect(plan.disposition == .record(.faulted))
        #expect(plan.queues == [QueueDeclaration("slipway.reserve.compensate")])
        let next = try decoded(plan.messages[0])
        #expect(next.state == .compensating && next.fault?.reason == "card declined" && next.fault?.step == "charge")
        #expect(plan.notice?.level == .info)
    }

    @Test("a step that ends the slip records `terminated`: a terminal event, nothing compensates")
    func terminated() throws {
        let plan = try planner().plan(
            slip(), kind: .execute, result: .executed(.terminated(reason: "nothing to do")), timing: Self.timing,
            at: Self.now, random: 0)
        #expect(plan.disposition == .record(.terminated))
        #expect(plan.messages.map(\.routingKey) == [topology.terminalRoutingKey(state: .terminated, slipID: "s-1")])
    }

    @Test(
        "a throw with attempts left retries after the policy's delay, jitter included, through the step's own delay queue",
        arguments: [0.0, 0.5, 0.999])
    func retry(random: Double) throws {
        let policy = RetryPolicy(maxAttempts: 3, initialDelayMs: 200, multiplier: 2, maxDelayMs: 30_000, jitter: 0.2)
        let plan = try planner { $0.retry = policy }.plan(
            slip(), kind: .execute, result: .threw("boom"), timing: Self.timing, at: Self.now, random: random)
        let delayMs = policy.delayMs(afterAttempt: 1, random: random)
        #expect(delayMs >= 200 && delayMs < 241)
        #expect(plan.disposition == .retry(delayMs: delayMs))
        #expect(plan.queues == [QueueDeclaration(
            topology.delayQueue(for: "slipway.charge.execute", delayMs: delayMs),
            arguments: .delay(DelayGrid.level(forMs: delayMs), thenTo: "slipway.charge.execute"))])
        let again = try decoded(plan.messages[0])
        #expect(again.sequence == 1 && again.attempt == 2 && again.log.last?.outcome == .retried)
        #expect(again.log.last?.reason == "boom")
        #expect(plan.hopEvent != nil && plan.notice?.level == .warning)
    }

    @Test("a retry policy without delay sends the slip straight back to its queue")
    func immediateRetry() throws {
        let plan = try planner { $0.retry = .immediate(maxAttempts: 2) }.plan(
            slip(), kind: .execute, result: .threw("boom"), timing: Self.timing, at: Self.now, random: 0.7)
        #expect(plan.disposition == .retry(delayMs: 0))
        #expect(plan.queues == [QueueDeclaration("slipway.charge.execute")])
    }

    @Test("the last attempt's throw faults the step, naming the attempts; the itinerary's policy beats the processor's")
    func lastAttempt() throws {
        // The processor would try 3 times; the slip's step says once.
        let once = [ItineraryStep(step: "charge", retry: .immediate(maxAttempts: 1)), ItineraryStep(step: "ship")]
        let plan = try planner().plan(
            slip(steps: once), kind: .execute, result: .threw("boom"), timing: Self.timing, at: Self.now, random: 0)
        #expect(plan.disposition == .record(.faulted))
        let next = try decoded(plan.messages[0])
        #expect(next.fault?.reason == "gave up after 1 attempts: boom")
        #expect(next.state == .compensating)
    }

    @Test("an undo that ran records `compensated`; the last one ends the slip compensated")
    func compensated() throws {
        var walking = slip()
        walking.faultStep(reason: "declined", entry: entry(step: "charge"))
        let plan = try planner(step: "reserve").plan(
            walking, kind: .compensate, result: .compensated, timing: Self.timing, at: Self.now, random: 0)
        #expect(plan.disposition == .record(.compensated))
        #expect(plan.messages.map(\.routingKey) == [topology.terminalRoutingKey(state: .compensated, slipID: "s-1")])
    }

    @Test("an undo that throws is retried by the compensation policy, then parks the slip as compensation-failed")
    func compensationFails() throws {
        var walking = slip()
        walking.faultStep(reason: "declined", entry: entry(step: "charge"))
        let reserve = planner(step: "reserve") { $0.compensationRetry = .immediate(maxAttempts: 2) }

        let first = try reserve.plan(
            walking, kind: .compensate, result: .threw("db down"), timing: Self.timing, at: Self.now, random: 0)
        #expect(first.disposition == .retry(delayMs: 0))
        #expect(first.queues == [QueueDeclaration("slipway.reserve.compensate")])

        walking.attempt = 2
        let last = try reserve.plan(
            walking, kind: .compensate, result: .threw("db down"), timing: Self.timing, at: Self.now, random: 0)
        #expect(last.disposition == .record(.failed))
        #expect(last.queues == [QueueDeclaration(topology.deadLetterQueue)])
        let parked = try #require(last.messages.first)
        #expect(parked.routingKey == topology.deadLetterQueue)
        #expect(parked.headers[ParkedHeaders.reasonCode] == "compensation-failed")
        #expect(parked.headers[ParkedHeaders.reason] == "compensation gave up after 2 attempts: db down")
        #expect(parked.headers[ParkedHeaders.parkedID] == "id-1")
        #expect(try codec.decode(parked.body).state == .compensationFailed)
        #expect(last.messages[1].routingKey == topology.terminalRoutingKey(state: .compensationFailed, slipID: "s-1"))
        #expect(last.notice?.level == .error)
    }

    @Test("the same inputs make the same plan: the planner reads no clock and no random source of its own")
    func deterministic() throws {
        let slip = slip()
        func make() throws -> HopPlan {
            try planner().plan(
                slip, kind: .execute, result: .threw("boom"), timing: Self.timing, at: Self.now, random: 0.3)
        }
        let one = try make()
        usleep(3_000)  // A plan that read the clock itself (its events' times are in milliseconds) would differ now.
        let two = try make()
        #expect(one.outgoing == two.outgoing && one.queues == two.queues && one.disposition == two.disposition)
    }

    // MARK: Before the handler

    @Test("a slip for this step's queue is run; one for another step, or for no step, is parked as misrouted")
    func admission() throws {
        let running = slip()
        guard case .run = try planner().admit(running, try arrival(.execute, running), at: Self.now) else {
            Issue.record("the slip's next hop is this queue's")
            return
        }
        let elsewhere = planner(step: "ship")
        guard case .park(let plan) = try elsewhere.admit(running, try arrival(.execute, running), at: Self.now) else {
            Issue.record("a slip for 'charge' must not run on 'ship'")
            return
        }
        #expect(plan.disposition == .park(.misrouted, reason: "received on 'slipway.ship.execute' but the slip's next hop is execute of step 'charge'"))
        let parked = try #require(plan.messages.first)
        #expect(parked.body == (try codec.encode(running)), "the original body, untouched")
        #expect(parked.headers[ParkedHeaders.slipID] == "s-1")
        #expect(parked.headers[ParkedHeaders.originalQueue] == "slipway.ship.execute")
        #expect(parked.headers[SigningKeys.signatureHeader] == "sig" && parked.headers["other"] == nil)
        #expect(plan.messages[1].exchange == topology.eventsExchange && plan.hopEvent == nil)
        #expect(plan.queues == [QueueDeclaration(topology.deadLetterQueue)])
    }

    @Test("an undo record addressed to another queue is parked as misrouted")
    func compensationAddress() throws {
        var walking = slip()
        walking.faultStep(reason: "declined", entry: entry(step: "charge"))
        walking.compensations[0].address = "slipway.elsewhere.compensate"
        guard case .park(let plan) = try planner(step: "reserve").admit(walking, try arrival(.compensate, walking), at: Self.now)
        else {
            Issue.record("the record's address is not this queue")
            return
        }
        guard case .park(.misrouted, let reason) = plan.disposition else { Issue.record("\(plan.disposition)"); return }
        #expect(reason.contains("slipway.elsewhere.compensate"))
    }

    @Test("a compensation-failed slip replayed to its undo queue resumes its walk back")
    func resumedWalkBack() throws {
        var walking = slip()
        walking.faultStep(reason: "declined", entry: entry(step: "charge"))
        walking.failCompensation(reason: "db down", entry: entry(step: "reserve"))
        walking.sequence -= 1  // the replayed copy is the one parked, before the failure advanced it
        guard case .run(let resumed) = try planner(step: "reserve").admit(
            walking, try arrival(.compensate, walking), at: Self.now)
        else {
            Issue.record("a replayed walk-back must run")
            return
        }
        #expect(resumed.state == .compensating && resumed.attempt == 1)
    }

    @Test("a body that is not a slip is parked with its rejection's code, named by the id read from it")
    func refused() throws {
        let body = Array(#"{"id":"s-7","template":"order","formatVersion":99}"#.utf8)
        let arrival = HopPlanner.Arrival(kind: .execute, body: body, headers: [:])
        let plan = try planner().refuse(
            arrival, SlipRejection(.unsupportedVersion, "formatVersion 99 is newer"), peek: SlipPeek.read(body),
            at: Self.now)
        #expect(plan.disposition == .park(.unsupportedVersion, reason: "formatVersion 99 is newer"))
        #expect(plan.messages[0].headers[ParkedHeaders.slipID] == "s-7" && plan.messages[0].body == body)
        let event = try #require(try SlipEventWire.decode(plan.messages[1].body).first)
        #expect(event.slipID == "s-7" && event.id != "s-7.parked", "a forged id never takes another event's place")
    }

    @Test("a hop redelivered unfinished as often as the limit is parked as poison; below it, it runs")
    func poison() throws {
        let running = slip()
        let planner = planner { $0.poisonRedeliveries = 3 }
        #expect(try planner.poison(running, try arrival(.execute, running), redeliveries: 2, at: Self.now) == nil)
        let plan = try #require(try planner.poison(running, try arrival(.execute, running), redeliveries: 3, at: Self.now))
        guard case .park(.poison, let reason) = plan.disposition else { Issue.record("\(plan.disposition)"); return }
        #expect(reason.hasPrefix("delivered 4 times"))
    }

    @Test("an execute whose slip's deadline passed faults without running; an undo still runs after it")
    func deadline() throws {
        var late = slip()
        late.deadline = Self.now.addingTimeInterval(-1)
        let plan = try #require(try planner().deadlinePassed(late, kind: .execute, at: Self.now))
        #expect(plan.disposition == .record(.faulted))
        let next = try decoded(plan.messages[0])
        #expect(next.state == .compensating && next.fault?.reason.contains("deadline") == true)
        #expect(next.log.last?.durationMicros == 0)

        #expect(try planner().deadlinePassed(late, kind: .compensate, at: Self.now) == nil)
        late.deadline = Self.now.addingTimeInterval(1)
        #expect(try planner().deadlinePassed(late, kind: .execute, at: Self.now) == nil)
    }

    @Test("the itinerary's timeout beats the processor's; an undo's comes from its record")
    func timeouts() throws {
        let planner = planner()
        var configuration = ProcessorConfiguration()
        configuration.timeout = .seconds(9)
        configuration.compensateTimeout = .seconds(7)
        #expect(planner.timeout(slip(), kind: .execute, configuration: configuration) == .seconds(9))
        let own = slip(steps: [ItineraryStep(step: "charge", timeoutMs: 250)])
        #expect(planner.timeout(own, kind: .execute, configuration: configuration) == .milliseconds(250))
        var walking = slip()
        #expect(planner.timeout(walking, kind: .compensate, configuration: configuration) == .seconds(7))
        walking.compensations[0].timeoutMs = 40
        #expect(planner.timeout(walking, kind: .compensate, configuration: configuration) == .milliseconds(40))
    }

    // MARK: From the record

    @Test("a recorded hop is forwarded as recorded, its delay queue declared from its name")
    func replay() throws {
        let delayQueue = topology.delayQueue(for: "slipway.ship.execute", delayMs: 500)
        let record = HopRecord(
            slipID: "s-1", sequence: 1, step: "charge", kind: .execute, outcome: .completed,
            outgoing: [
                OutgoingMessage(exchange: topology.eventsExchange, routingKey: "execute.charge.s-1", body: [1]),
                .toQueue(delayQueue, body: [2]),
            ])
        let plan = planner().replay(record)
        #expect(plan.disposition == .record(.completed) && plan.hopEvent == nil)
        #expect(plan.outgoing == record.outgoing)
        #expect(plan.queues == [QueueDeclaration(
            delayQueue, arguments: .delay(DelayGrid.level(forMs: 500), thenTo: "slipway.ship.execute"))])
    }
}

/// Ids `id-1`, `id-2`, ... in the order the planner asks for them.
private final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> String { "id-\(value.withLock { $0 += 1; return $0 })" }
}
