import Foundation
import Testing

@testable import Slipway
import SlipwayCore
import SlipwayTesting
import SlipwayTransport

/// Hop events travel in batches (HopEventBatcher), and a hop holds its concurrency slot only until its slip is
/// forwarded (HopSlots): its ack, not the next hop, waits for its events' batch.
@Suite("Hop event batches and hop slots")
struct HopEventBatcherTests {
    static func event(_ sequence: Int) throws -> [UInt8] {
        try SlipEvent(
            slipID: "s1", template: "t", kind: .execute, step: "a", sequence: sequence, attempt: 1, outcome: "completed",
            state: .running, processor: "test", at: Date(timeIntervalSince1970: 1_700_000_000)
        ).jsonBytes()
    }

    /// The batches the broker received, as the sequences of their events.
    static func batches(_ broker: InMemoryBroker) async throws -> [[Int]] {
        try await broker.publishedMessages.map { message in
            #expect(message.contentType == SlipEventWire.batchContentType)
            return try SlipEventWire.decode(message.body).map(\.sequence)
        }
    }

    /// A batcher of step `a` over a new connection to `broker`, whose events exchange it declares.
    static func batcher(_ broker: InMemoryBroker, maxEvents: Int, linger: Duration) async -> HopEventBatcher {
        await broker.declareTopicExchange(Topology().eventsExchange)
        return HopEventBatcher(
            transport: InMemoryTransport(broker: broker), topology: Topology(), step: "a", maxEvents: maxEvents,
            linger: linger)
    }

    @Test("a full batch goes at once, without waiting for its linger")
    func fullBatchGoesAtOnce() async throws {
        let broker = InMemoryBroker()
        let batcher = await Self.batcher(broker, maxEvents: 3, linger: .seconds(3600))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sequence in 0..<3 { group.addTask { try await batcher.publish([try Self.event(sequence)]) } }
            try await group.waitForAll()
        }
        let batches = try await Self.batches(broker)
        #expect(batches.count == 1)
        #expect(batches.first.map { Set($0) } == [0, 1, 2])
    }

    @Test("a lone event goes after the linger, and once the linger task has ended every event goes at once")
    func loneEventAndDrain() async throws {
        let broker = InMemoryBroker()
        let lingering = await Self.batcher(broker, maxEvents: 16, linger: .milliseconds(5))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await lingering.run() }
            try await lingering.publish([try Self.event(7)])
            group.cancelAll()
        }
        #expect(try await Self.batches(broker) == [[7]])

        let draining = await Self.batcher(broker, maxEvents: 16, linger: .seconds(3600))
        let timer = Task { await draining.run() }
        timer.cancel()
        await timer.value
        try await draining.publish([try Self.event(8)])
        #expect(try await Self.batches(broker) == [[7], [8]])
    }

    @Test("full batches go out one after another without a linger task: each hop hands the next batch on", .timeLimit(.minutes(1)))
    func fullBatchesHandedOn() async throws {
        let broker = InMemoryBroker()
        let batcher = await Self.batcher(broker, maxEvents: 2, linger: .seconds(3600))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sequence in 0..<12 { group.addTask { try await batcher.publish([try Self.event(sequence)]) } }
            try await group.waitForAll()
        }
        let batches = try await Self.batches(broker)
        #expect(batches.allSatisfy { $0.count == 2 })
        #expect(Set(batches.joined()) == Set(0..<12))
    }

    @Test("events waiting for their linger go at once when the linger task is cancelled", .timeLimit(.minutes(1)))
    func cancelledLingerSends() async throws {
        let broker = InMemoryBroker()
        let batcher = await Self.batcher(broker, maxEvents: 16, linger: .seconds(3600))
        let timer = Task { await batcher.run() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await batcher.publish([try Self.event(1)]) }
            group.addTask { try await batcher.publish([try Self.event(2)]) }
            try await Task.sleep(for: .milliseconds(50))  // the events wait for their linger (an hour)
            timer.cancel()
            try await group.waitForAll()
        }
        await timer.value
        #expect(Set(try await Self.batches(broker).joined()) == [1, 2])
    }

    @Test("a slot counts once however often it is given back, and a dropped slot comes back")
    func slots() async {
        let slots = HopSlots(2)
        let first = await slots.acquire()
        var second: HopSlots.Slot? = await slots.acquire()
        #expect(slots.available == 0)
        first.release()
        first.release()
        #expect(slots.available == 1)
        _ = second
        second = nil
        #expect(slots.available == 2)
    }

    @Test("with one slot and a batch that never fills, slips still flow: only the acks wait, and stopping sends the batch")
    func slipsDoNotWaitForEvents() async throws {
        let saga = Saga { configuration in
            configuration.concurrency = 1
            configuration.hopEventLinger = .seconds(3600)
        }
        await saga.startAll()
        let sender = saga.sender()
        for _ in 0..<3 {
            let event = try await sender.sendAndWait(saga.slip(), timeout: patience)
            #expect(event.state == .completed)
        }
        // Every hop's event still waits for company, so no delivery of the chain is acknowledged yet.
        let firstQueue = saga.topology.executeQueue(step: "a")
        #expect(await saga.broker.unackedCount(firstQueue) == 3)
        try await saga.stopAll()
        #expect(await saga.broker.unackedCount(firstQueue) == 0)
        #expect(await saga.broker.protocolViolations.isEmpty)
    }
}
