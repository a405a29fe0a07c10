import Foundation
import Slipway
import SlipwayTesting
import SlipwayTransport
import Testing

/// The processor runtime end to end: four processors (a, b, c with an undo; d without), each its own "process", over one
/// in-memory broker.
@Suite("Processor runtime over an in-memory broker")
struct SagaTests {
    @Test("a slip through all four steps completes, each step once, in order, later steps seeing earlier variables")
    func completes() async throws {
        try await withSaga { saga in
            let slip = saga.slip()
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            #expect(event.kind == .terminal)
            #expect(event.state == .completed)
            #expect(event.step == "d")
            #expect(event.fault == nil)
            #expect(
                await saga.effects.effects(of: slip.id) == Saga.steps.map { .executed($0, attempt: 1) })

            let seenByA = try #require(await saga.effects.variablesSeen(by: "a", slipID: slip.id))
            #expect(seenByA == ["orderId": "order-1"])
            let seenByB = try #require(await saga.effects.variablesSeen(by: "b", slipID: slip.id))
            #expect(seenByB["trail"] == ["a"])
            #expect(seenByB["aResult"] == "done-a")
            let seenByD = try #require(await saga.effects.variablesSeen(by: "d", slipID: slip.id))
            #expect(seenByD["trail"] == ["a", "b", "c"])
            #expect(seenByD["aResult"] == "done-a")
            #expect(seenByD["bResult"] == "done-b")
            #expect(seenByD["cResult"] == "done-c")
            #expect(seenByD["orderId"] == "order-1")

            #expect(await saga.broker.waitUntilIdle(timeout: patience))
            #expect(await saga.broker.queueDepth(saga.topology.deadLetterQueue) == 0)
        }
    }

    @Test(
        "a fault at a step compensates exactly the completed steps that have an undo, newest first",
        arguments: Saga.steps)
    func faultCompensates(faulty: String) async throws {
        try await withSaga { saga in
            let slip = saga.slip(arguments: [faulty: ["fault": true]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            let done = Saga.steps.prefix { $0 != faulty }
            let undone = done.reversed().filter { Saga.stepsWithUndo.contains($0) }
            let expected: [Effect] =
                done.map { .executed($0, attempt: 1) } + [.faulted(faulty)] + undone.map { .compensated($0) }
            #expect(await saga.effects.effects(of: slip.id) == expected)
            // Faulting the first step leaves nothing to undo.
            #expect(event.state == (undone.isEmpty ? .faulted : .compensated))
            #expect(event.fault?.step == faulty)
            #expect(event.fault?.reason == "\(faulty) told to fault")
            #expect(event.fault?.attempts == 1)
            #expect(await saga.broker.waitUntilIdle(timeout: patience))
        }
    }

    @Test("a completed step without an undo is passed over on the walk-back")
    func stepWithoutUndoIsSkipped() async throws {
        try await withSaga { saga in
            let slip = saga.slip(["a", "d", "b"], arguments: ["b": ["fault": true]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            #expect(event.state == .compensated)
            #expect(
                await saga.effects.effects(of: slip.id) == [
                    .executed("a", attempt: 1), .executed("d", attempt: 1), .faulted("b"), .compensated("a"),
                ])
        }
    }

    @Test("a handler that throws twice then succeeds completes with attempt 3 logged, and the next step starts at 1")
    func retriesThenSucceeds() async throws {
        try await withSaga { saga in
            let slip = saga.slip(arguments: ["b": ["throwTimes": 2]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            #expect(event.state == .completed)
            #expect(
                await saga.effects.effects(of: slip.id) == [
                    .executed("a", attempt: 1), .threw("b", attempt: 1), .threw("b", attempt: 2),
                    .executed("b", attempt: 3), .executed("c", attempt: 1), .executed("d", attempt: 1),
                ])

            // The slip b forwarded to c carries b's history: two retried attempts and the completed third, one hop.
            let published = await saga.broker.publishedMessages
            let toC = try #require(
                published.last { $0.routingKey == saga.topology.executeQueue(step: "c") && $0.correlationID == slip.id })
            let forwarded = try decodeSlip(toC.body)
            let bEntries = forwarded.log.filter { $0.step == "b" }
            #expect(bEntries.map(\.attempt) == [1, 2, 3])
            #expect(bEntries.map(\.outcome) == [.retried, .retried, .completed])
            #expect(bEntries.allSatisfy { $0.sequence == 1 && $0.kind == .execute })
            #expect(forwarded.sequence == 2)
            #expect(forwarded.attempt == 1)

            let toD = try #require(
                published.last { $0.routingKey == saga.topology.executeQueue(step: "d") && $0.correlationID == slip.id })
            let cEntries = try decodeSlip(toD.body).log.filter { $0.step == "c" }
            #expect(cEntries.map(\.attempt) == [1])
        }
    }

    @Test("a handler that always throws faults after maxAttempts and compensates")
    func exhaustsAttempts() async throws {
        try await withSaga { saga in
            let slip = saga.slip(arguments: ["c": ["throwAlways": true]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            #expect(event.state == .compensated)
            let fault = try #require(event.fault)
            #expect(fault.step == "c")
            #expect(fault.attempts == saga.configuration.maxAttempts)
            #expect(fault.reason.hasPrefix("gave up after 3 attempts"))
            #expect(
                await saga.effects.effects(of: slip.id) == [
                    .executed("a", attempt: 1), .executed("b", attempt: 1),
                    .threw("c", attempt: 1), .threw("c", attempt: 2), .threw("c", attempt: 3),
                    .compensated("b"), .compensated("a"),
                ])
        }
    }

    @Test("a compensation that keeps failing parks the slip; replaying it after the fix finishes the walk-back")
    func compensationFailureIsParkedAndReplayable() async throws {
        try await withSaga { saga in
            await saga.switches.breakUndo(of: "b")
            let slip = saga.slip(arguments: ["d": ["fault": true]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            #expect(event.kind == .terminal)
            #expect(event.state == .compensationFailed)
            #expect(event.step == "b")
            #expect(event.fault?.step == "d")  // The original fault is kept.
            let attempts = saga.configuration.compensationMaxAttempts
            #expect(
                await saga.effects.effects(of: slip.id) == [
                    .executed("a", attempt: 1), .executed("b", attempt: 1), .executed("c", attempt: 1),
                    .faulted("d"), .compensated("c"),
                ] + (1...attempts).map { .undoFailed("b", attempt: $0) })

            let deadLetters = saga.topology.deadLetterQueue
            let parked = try #require(await saga.broker.messages(in: deadLetters).only)
            #expect(parked.headers[ParkedHeaders.reasonCode] == "compensation-failed")
            #expect(parked.headers[ParkedHeaders.slipID] == slip.id)
            #expect(parked.headers[ParkedHeaders.originalQueue] == saga.topology.compensateQueue(step: "b"))
            #expect(parked.headers[ParkedHeaders.reason]?.contains("the undo of b is broken") == true)
            let parkedSlip = try decodeSlip(parked.body)
            #expect(parkedSlip.state == .compensationFailed)
            #expect(parkedSlip.compensations.map(\.step) == ["a", "b"])  // b's record is kept for the replay.

            // The cause is fixed; an operator replays the parked body to the queue it came from.
            await saga.switches.fixUndo(of: "b")
            let taken = await saga.broker.takeMessages(from: deadLetters)
            #expect(taken.count == 1)
            let producer = saga.producer()
            let follower = try await SlipEventFollower.terminalEvents(
                of: [slip.id], transport: producer, topology: saga.topology)
            defer { follower.stop() }
            try await producer.publish([.toQueue(saga.topology.compensateQueue(step: "b"), body: parked.body)])
            let replayed = try await follower.expectNext("terminal event after the replay")

            #expect(replayed.state == .compensated)
            #expect(replayed.step == "a")
            #expect(Array(await saga.effects.effects(of: slip.id).suffix(2)) == [.compensated("b"), .compensated("a")])
            #expect(await saga.broker.waitUntilIdle(timeout: patience))
            #expect(await saga.broker.queueDepth(deadLetters) == 0)
        }
    }

    enum BadInput: String, CaseIterable, CustomStringConvertible {
        case garbage, newerVersion, misrouted
        var description: String { rawValue }
    }

    @Test("bad input on a step's queue is parked with its reason code, and the processor serves the next slip",
          arguments: BadInput.allCases)
    func badInputIsParked(input: BadInput) async throws {
        try await withSaga { saga in
            let queue = saga.topology.executeQueue(step: "a")
            let body: [UInt8]
            let code: String
            let slipID: String?
            switch input {
            case .garbage:
                body = Array("this is not a slip {".utf8)
                code = "malformed"
                slipID = nil
            case .newerVersion:
                let slip = saga.slip()
                var object = try #require(
                    try JSONSerialization.jsonObject(with: Data(SlipCodec().encode(slip))) as? [String: Any])
                object["formatVersion"] = 2
                body = Array(try JSONSerialization.data(withJSONObject: object))
                code = "unsupported-version"
                slipID = slip.id  // Not a slip this processor reads, but its id can be: the park names it.
            case .misrouted:
                let slip = saga.slip(["b", "c"])
                body = try SlipCodec().encode(slip)
                code = "misrouted"
                slipID = slip.id
            }

            let producer = saga.producer()
            let parkedEvents = try await SlipEventFollower(
                transport: producer, topology: saga.topology, bindingKeys: ["parked.a.#"])
            defer { parkedEvents.stop() }
            try await producer.declareQueue(queue)
            try await producer.publish([.toQueue(queue, body: body)])

            let event = try await parkedEvents.expectNext("parked event")
            #expect(event.kind == .parked)
            #expect(event.outcome == code)
            #expect(event.slipID == slipID ?? "unknown")
            let parked = try #require(await saga.broker.messages(in: saga.topology.deadLetterQueue).only)
            #expect(parked.headers[ParkedHeaders.reasonCode] == code)
            #expect(parked.headers[ParkedHeaders.originalQueue] == queue)
            #expect(parked.headers[ParkedHeaders.slipID] == slipID)
            #expect(parked.body == body)  // Untouched, so that a replay sends exactly what came.

            let next = saga.slip()
            let done = try await saga.sender().sendAndWait(next, timeout: patience)
            #expect(done.state == .completed)
            #expect(await saga.effects.effects(of: next.id) == Saga.steps.map { .executed($0, attempt: 1) })
            #expect(await saga.broker.queueDepth(saga.topology.deadLetterQueue) == 1)
        }
    }

    enum DuplicateTiming: String, CaseIterable, CustomStringConvertible {
        /// Both copies wait in the queue together (one instance gets both at once).
        case together
        /// The copy comes after the slip completed.
        case afterCompletion
        var description: String { rawValue }
    }

    @Test("a duplicate of a hop message runs the step once", arguments: DuplicateTiming.allCases)
    func duplicateRunsOnce(timing: DuplicateTiming) async throws {
        try await withSaga { saga in
            let slip = saga.slip()
            let queue = saga.topology.executeQueue(step: "a")
            let message = OutgoingMessage.toQueue(
                queue, body: try SlipCodec().encode(slip), messageID: "\(slip.id).0.1", correlationID: slip.id,
                contentType: SlipCodec.contentType)
            let producer = saga.producer()
            let follower = try await SlipEventFollower.terminalEvents(
                of: [slip.id], transport: producer, topology: saga.topology)
            defer { follower.stop() }
            try await producer.declareQueue(queue)

            switch timing {
            case .together:
                try await producer.publish([message, message])
                #expect(try await follower.expectNext("terminal event").state == .completed)
            case .afterCompletion:
                try await producer.publish([message])
                #expect(try await follower.expectNext("terminal event").state == .completed)
                try await producer.publish([message])
            }
            // Both copies were taken and settled before anything is counted.
            #expect(await saga.broker.waitUntilIdle(timeout: patience))

            let effects = await saga.effects.effects(of: slip.id)
            #expect(effects == Saga.steps.map { .executed($0, attempt: 1) })
            let terminalEvents = await saga.broker.publishedMessages.filter {
                $0.exchange == saga.topology.eventsExchange && $0.routingKey.hasPrefix("terminal.")
                    && $0.correlationID == slip.id
            }
            #expect(terminalEvents.count == 1)
            let forwardsToB = await saga.broker.publishedMessages.filter {
                $0.routingKey == saga.topology.executeQueue(step: "b") && $0.correlationID == slip.id
            }
            #expect(forwardsToB.count == 1)
        }
    }

    @Test(
        "a crash after the hop record is saved and before the ack: the redelivery is forwarded from the record, not run again",
        arguments: CrashPoint.allCases)
    func crashBeforeAck(point: CrashPoint) async throws {
        try await withSaga(skipping: ["b"]) { saga in
            let store = InMemoryHopRecordStore()
            let crashing = CrashingStore(inner: store, point: point)
            let first = await saga.start("b", store: crashing, instance: "test-b-1")
            await crashing.attach(first.transport)

            let slip = saga.slip()
            let producer = saga.producer()
            let follower = try await SlipEventFollower.terminalEvents(
                of: [slip.id], transport: producer, topology: saga.topology)
            defer { follower.stop() }
            try await saga.sender().send(slip)
            #expect(await crashing.waitForCrash())

            // The killed process's delivery went back to the queue, marked redelivered.
            let queueB = saga.topology.executeQueue(step: "b")
            let requeued = try #require(await saga.broker.messages(in: queueB).only)
            #expect(requeued.redelivered)
            #expect(requeued.correlationID == slip.id)
            let record = try #require(await store.record(slipID: slip.id, sequence: 1))
            #expect(record.outcome == .completed)
            #expect(record.forwarded == (point == .afterMarkForwarded))

            // The process restarts with the same hop record (its SQLite file survives).
            await saga.start("b", store: store, instance: "test-b-2")
            let event = try await follower.expectNext("terminal event")
            #expect(event.state == .completed)
            // Forwarded before the crash, the slip can end before the restarted process even takes its redelivery:
            // wait for that too.
            let deadline = ContinuousClock.now.advanced(by: patience)
            while await saga.broker.queueDepth(queueB) + saga.broker.unackedCount(queueB) > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(await saga.broker.waitUntilIdle(timeout: patience))

            let effects = await saga.effects.effects(of: slip.id)
            #expect(effects == Saga.steps.map { .executed($0, attempt: 1) })
            #expect(await saga.broker.queueDepth(queueB) == 0)
            #expect(await store.record(slipID: slip.id, sequence: 1)?.forwarded == true)
            let queueC = saga.topology.executeQueue(step: "c")
            let forwardsToC = await saga.broker.publishedMessages.filter {
                $0.routingKey == queueC && $0.correlationID == slip.id
            }
            // Published once by the restarted process (after a crash before publishing) or once before the crash.
            #expect(forwardsToC.count == 1)
            // The forward is the recorded one, byte for byte.
            #expect(forwardsToC.first?.body == record.outgoing.first { $0.routingKey == queueC }?.body)
        }
    }

    @Test("a hop never publishes to a queue that another hop of the same instance is still declaring")
    func concurrentFirstForwardsWaitForTheDeclaration() async throws {
        try await withSaga(skipping: ["a", "b", "c", "d"]) { saga in
            let queueB = saga.topology.executeQueue(step: "b")
            var gate: DeclarationGateTransport.Gate?
            await saga.start("a") { transport in
                let wrapped = DeclarationGateTransport(transport, queue: queueB)
                gate = wrapped.gate
                return wrapped
            }
            let sender = saga.sender()
            try await sender.send(saga.slip())
            try await sender.send(saga.slip())

            // (Idle alone could hold before the processor consumes: a queue without consumers does not count.)
            #expect(await saga.broker.waitForDepth(queueB, atLeast: 2, timeout: patience))
            #expect(await saga.broker.waitUntilIdle(timeout: patience))
            #expect(await saga.broker.queueDepth(queueB) == 2)  // Neither forward was dropped.
            #expect(await gate?.publishedEarly == 0)
        }
    }

    @Test("many slips over two instances of every step: each slip completes, each step once per slip")
    func manySlipsOverTwoInstances() async throws {
        try await withSaga { saga in
            for step in Saga.steps { await saga.start(step, instance: "test-\(step)-2") }
            let slips = (0..<20).map { index in
                saga.slip(arguments: index % 5 == 0 ? ["c": ["fault": true]] : [:])
            }
            let producer = saga.producer()
            let follower = try await SlipEventFollower.terminalEvents(
                of: slips.map(\.id), transport: producer, topology: saga.topology)
            defer { follower.stop() }
            let sender = saga.sender()
            for slip in slips { try await sender.send(slip) }

            var ended: [String: SlipState] = [:]
            for _ in slips {
                guard let event = await follower.next(timeout: patience) else {
                    let ids = Set(slips.map(\.id)).subtracting(ended.keys)
                    var report = await saga.broker.summary()
                    for id in ids { report += "\n\(id): \(await saga.effects.effects(of: id))" }
                    let terminal = await saga.broker.publishedMessages.filter { $0.routingKey.hasPrefix("terminal.") }
                    report += "\nterminal published: \(terminal.count)"
                    Issue.record("missing terminal events:\n\(report)")
                    return
                }
                ended[event.slipID] = event.state
            }
            for (index, slip) in slips.enumerated() {
                if index % 5 == 0 {
                    #expect(ended[slip.id] == .compensated)
                    #expect(
                        await saga.effects.effects(of: slip.id) == [
                            .executed("a", attempt: 1), .executed("b", attempt: 1), .faulted("c"),
                            .compensated("b"), .compensated("a"),
                        ])
                } else {
                    #expect(ended[slip.id] == .completed)
                    #expect(await saga.effects.effects(of: slip.id) == Saga.steps.map { .executed($0, attempt: 1) })
                }
            }
            #expect(await saga.broker.waitUntilIdle(timeout: patience))
        }
    }
}

extension Array {
    /// The single element, or nil when there are none or several.
    var only: Element? { count == 1 ? first : nil }
}
