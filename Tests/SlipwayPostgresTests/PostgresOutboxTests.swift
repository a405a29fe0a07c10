import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Slipway
import SlipwayOutbox
import SlipwayPostgres
import SlipwayTesting
import SlipwayTransport
import Synchronization
import Testing

@Suite(
    "the producer outbox in PostgreSQL: slips enqueued in the app's transaction, claimed by relays with row locks",
    .enabled(if: PostgresTestServer.enabled, "set SLIPWAY_POSTGRES_TESTS=1"))
struct PostgresOutboxTests {
    let topology = Topology(prefix: "pgoutbox")

    @Test("a rolled-back transaction leaves neither the row nor the slip; a second enqueue of a slip id is a no-op")
    func rollbackAndDuplicates() async throws {
        try await withOutboxDatabase { url in
            try await withOutbox(url: url, topology: topology) { outbox in
                try await outbox.placeOrder("1", slip: outboxSlip("slip-1"), rollBack: true)
                try await outbox.placeOrder("2", slip: outboxSlip("slip-2"))
                try await outbox.placeOrder("3", slip: outboxSlip("slip-2", variables: ["n": 2]))
                #expect(try await outbox.orderIDs() == ["2", "3"])
                #expect(try await outbox.entries(includingSent: true).map(\.slipID) == ["slip-2"])
                // The first enqueue's bytes stand.
                let broker = InMemoryBroker()
                let relay = OutboxRelay(outbox: outbox, transport: InMemoryTransport(broker: broker))
                #expect(try await relay.relayBatch() == 1)
                let expected = try SlipSender.message(
                    for: outboxSlip("slip-2"), topology: topology, codec: SlipCodec(), signing: nil)
                #expect(await broker.publishedMessages == [expected])
            }
        }
    }

    @Test("relayed slips reach their first step's queue once, oldest first, and are marked sent")
    func relayedOnce() async throws {
        try await withOutboxDatabase { url in
            try await withOutbox(url: url, topology: topology) { outbox in
                for id in ["1", "2", "3"] { try await outbox.placeOrder(id, slip: outboxSlip("slip-\(id)")) }
                let broker = InMemoryBroker()
                let relay = OutboxRelay(outbox: outbox, transport: InMemoryTransport(broker: broker))
                #expect(try await relay.relayBatch() == 3)
                #expect(try await relay.relayBatch() == 0)
                let queued = await broker.messages(in: topology.executeQueue(step: "a"))
                #expect(queued.map(\.correlationID) == ["slip-1", "slip-2", "slip-3"])
                #expect(try await outbox.entries(includingSent: false).isEmpty)
                let all = try await outbox.entries(includingSent: true)
                #expect(all.count == 3 && all.allSatisfy { $0.sentAt != nil && $0.attempts == 0 })
            }
        }
    }

    @Test("a failed batch counts an attempt per slip with its error and backoff; retry makes it due; pruning keeps pending")
    func failuresRetryAndPrune() async throws {
        try await withOutboxDatabase { url in
            try await withOutbox(url: url, topology: topology) { outbox in
                try await outbox.placeOrder("1", slip: outboxSlip("slip-1"))
                try await outbox.placeOrder("2", slip: outboxSlip("slip-2"))
                let start = Date().addingTimeInterval(3600)
                let failed = try await outbox.relayDue(now: start, limit: 1) { slips in
                    .failed(
                        error: "broker down (test)",
                        retries: slips.map {
                            OutboxRetry(slipID: $0.slipID, attempts: $0.attempts + 1, nextAttemptAt: start.addingTimeInterval(10))
                        })
                }
                #expect(failed == 0)
                var entries = try await outbox.entries(includingSent: false)
                #expect(entries.map(\.attempts) == [1, 0])
                #expect(entries.first?.lastError == "broker down (test)")
                // slip-1 waits out its backoff; slip-2 is due.
                let due = try await outbox.relayDue(now: start.addingTimeInterval(5), limit: 10) { _ in .sent(at: start) }
                #expect(due == 1)
                entries = try await outbox.entries(includingSent: true)
                #expect(entries.map(\.slipID) == ["slip-1", "slip-2"])
                #expect(entries.map { $0.sentAt != nil } == [false, true])
                #expect(try await outbox.retry(slipID: "slip-2", now: Date()).isEmpty)  // sent: not changed
                #expect(try await outbox.retry(slipID: nil, now: start) == ["slip-1"])
                #expect(try await outbox.relayDue(now: start, limit: 10) { _ in .sent(at: start) } == 1)
                #expect(try await outbox.pruneSent(before: start.addingTimeInterval(-1)) == 0)
                try await outbox.placeOrder("3", slip: outboxSlip("slip-3"))
                #expect(try await outbox.pruneSent(before: start.addingTimeInterval(1)) == 2)
                #expect(try await outbox.entries(includingSent: true).map(\.slipID) == ["slip-3"])
            }
        }
    }

    @Test("while one relay publishes its batch, another skips the locked slips and takes the next ones, never waiting")
    func secondRelaySkipsLockedBatch() async throws {
        try await withOutboxDatabase { url in
            try await withOutbox(url: url, topology: topology) { first in
                try await withOutbox(url: url, topology: topology) { second in
                    for index in 1...5 { try await first.placeOrder("\(index)", slip: outboxSlip("slip-\(index)")) }
                    let gate = Gate()
                    // The first relay's publish holds its batch (slips 1 and 2) until the gate opens.
                    let firstBatch = Task {
                        try await first.relayDue(now: Date(), limit: 2) { slips in
                            gate.claimed(slips.map(\.slipID))
                            await gate.waitOpen()
                            return .sent(at: Date())
                        }
                    }
                    let firstClaim = await gate.waitClaimed()
                    #expect(firstClaim == ["slip-1", "slip-2"])
                    // If the second relay waited for the first one's locks, the gate would open only on its safety
                    // timeout: `openedByTimeout` says so.
                    gate.openAfter(.seconds(60))
                    var taken: [[String]] = []
                    while true {
                        let batch = Mutex<[String]>([])
                        let sent = try await second.relayDue(now: Date(), limit: 2) { slips in
                            batch.withLock { $0 = slips.map(\.slipID) }
                            return .sent(at: Date())
                        }
                        if sent == 0 { break }
                        taken.append(batch.withLock { $0 })
                    }
                    #expect(!gate.openedByTimeout)
                    gate.open()
                    #expect(try await firstBatch.value == 2)
                    #expect(taken == [["slip-3", "slip-4"], ["slip-5"]])
                    #expect(try await first.entries(includingSent: false).isEmpty)
                }
            }
        }
    }

    @Test("two relays as services on one database, each with its own client, publish every slip exactly once")
    func twoRelaysPublishOnce() async throws {
        let count = 600
        try await withOutboxDatabase { url in
            try await withOutbox(url: url, topology: topology) { first in
                try await withOutbox(url: url, topology: topology) { second in
                    for index in 1...count { try await first.placeOrder("\(index)", slip: outboxSlip("slip-\(index)")) }
                    let broker = InMemoryBroker()
                    var configuration = OutboxRelay.Configuration()
                    configuration.batchSize = 20
                    configuration.pollInterval = .milliseconds(10)
                    let relays = [first, second].map {
                        OutboxRelay(outbox: $0, transport: InMemoryTransport(broker: broker), configuration: configuration)
                    }
                    let group = ServiceGroup(services: relays, logger: Logger(label: "test"))
                    let running = Task { try await group.run() }
                    let queue = topology.executeQueue(step: "a")
                    #expect(await broker.waitForDepth(queue, atLeast: count, timeout: .seconds(120)))
                    while try await !first.entries(includingSent: false).isEmpty { try await Task.sleep(for: .milliseconds(20)) }
                    await group.triggerGracefulShutdown()
                    try await running.value
                    let published = await broker.publishedMessages.compactMap(\.correlationID)
                    #expect(published.count == count)
                    #expect(Set(published).count == count)
                }
            }
        }
    }

    @Test("`slip outbox` refuses a database without the outbox's table rather than create it")
    func inspectorRefusesMissingTable() async throws {
        try await withOutboxDatabase { url in
            await #expect(throws: OutboxError.self) {
                try await PostgresOutbox.withExisting(url: url) { try await $0.entries(includingSent: true).count }
            }
            try await withOutbox(url: url, topology: topology) { outbox in
                try await outbox.placeOrder("1", slip: outboxSlip("slip-1"))
            }
            let entries = try await PostgresOutbox.withExisting(url: url) { try await $0.entries(includingSent: true) }
            #expect(entries.map(\.slipID) == ["slip-1"])
        }
    }
}

/// The first relay's batch held open: it reports what it claimed, then waits until the test opens the gate (or a
/// safety timeout does, which the test then counts as a failure).
final class Gate: Sendable {
    private struct State {
        var claimed: [String]?
        var claimWaiter: CheckedContinuation<[String], Never>?
        var isOpen = false
        var openWaiter: CheckedContinuation<Void, Never>?
        var openedByTimeout = false
    }
    private let state = Mutex(State())

    var openedByTimeout: Bool { state.withLock { $0.openedByTimeout } }

    func claimed(_ ids: [String]) {
        let waiter = state.withLock { state in
            state.claimed = ids
            defer { state.claimWaiter = nil }
            return state.claimWaiter
        }
        waiter?.resume(returning: ids)
    }

    func waitClaimed() async -> [String] {
        await withCheckedContinuation { continuation in
            let ids = state.withLock { state in
                if state.claimed == nil { state.claimWaiter = continuation }
                return state.claimed
            }
            if let ids { continuation.resume(returning: ids) }
        }
    }

    func open(byTimeout: Bool = false) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.isOpen else { return nil }
            state.isOpen = true
            state.openedByTimeout = byTimeout
            defer { state.openWaiter = nil }
            return state.openWaiter
        }
        waiter?.resume()
    }

    func openAfter(_ timeout: Duration) {
        Task {
            try await Task.sleep(for: timeout)
            self.open(byTimeout: true)
        }
    }

    func waitOpen() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state in
                if !state.isOpen { state.openWaiter = continuation }
                return state.isOpen
            }
            if open { continuation.resume() }
        }
    }
}
