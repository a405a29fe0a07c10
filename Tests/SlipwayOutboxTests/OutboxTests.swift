import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Slipway
import SlipwayOutbox
import SlipwayTesting
import SlipwayTransport
import Testing

@Suite("the producer outbox: slips enqueued in the app's transaction, published by the relay")
struct OutboxTests {
    let topology = Topology(prefix: "outbox")
    let database: DatabaseQueue
    let path: String
    let outbox: SlipOutbox

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString).sqlite").path
        database = try DatabaseQueue(path: path)
        try database.write { db in try db.execute(sql: "CREATE TABLE orders (id TEXT PRIMARY KEY)") }
        outbox = try SlipOutbox(database: database, topology: topology)
    }

    /// Made at a fixed time, so that the same arguments make the same bytes.
    func slip(_ id: String, steps: [String] = ["a", "b"], variables: [String: JSONValue] = [:]) -> Slip {
        Slip(
            id: id, template: "order", itinerary: steps.map { ItineraryStep(step: $0) }, variables: variables,
            createdAt: Date(timeIntervalSince1970: 1_800_000_000))
    }

    func entries(includingSent: Bool = false) throws -> [OutboxEntry] {
        try OutboxInspector(path: path).entries(includingSent: includingSent)
    }

    /// The order's row and its slip in one transaction.
    func placeOrder(_ id: String, rollBack: Bool = false) throws {
        struct RollBack: Error {}
        do {
            try database.write { db in
                try db.execute(sql: "INSERT INTO orders (id) VALUES (?)", arguments: [id])
                try outbox.enqueue(slip("slip-\(id)"), in: db)
                if rollBack { throw RollBack() }
            }
        } catch is RollBack {}
    }

    @Test("a transaction that rolls back leaves neither the row nor the slip; a committed one leaves both")
    func rollbackLeavesNothing() throws {
        try placeOrder("1", rollBack: true)
        try placeOrder("2")
        let orders = try database.read { db in try String.fetchAll(db, sql: "SELECT id FROM orders") }
        #expect(orders == ["2"])
        #expect(try entries().map(\.slipID) == ["slip-2"])
    }

    @Test("relayed slips reach their first step's queue once, as SlipSender would publish them, and are marked sent")
    func relayedOnce() async throws {
        let broker = InMemoryBroker()
        let relay = OutboxRelay(outbox: outbox, transport: InMemoryTransport(broker: broker))
        for id in ["1", "2", "3"] { try placeOrder(id) }
        #expect(try await relay.relayBatch() == 3)
        #expect(try await relay.relayBatch() == 0)
        let queued = await broker.messages(in: topology.executeQueue(step: "a"))
        #expect(queued.map(\.correlationID) == ["slip-1", "slip-2", "slip-3"])
        let expected = try SlipSender.message(for: slip("slip-1"), topology: topology, codec: SlipCodec(), signing: nil)
        #expect(await broker.publishedMessages.first == expected)
        #expect(await broker.publishCount == 3)
        #expect(try entries().isEmpty)
        #expect(try entries(includingSent: true).allSatisfy { $0.sentAt != nil && $0.attempts == 0 })
    }

    @Test("a second enqueue of the same slip id is a no-op, in the same transaction or a later one")
    func duplicateEnqueue() async throws {
        try outbox.enqueue([slip("s-1", variables: ["n": 1]), slip("s-1", variables: ["n": 2])])
        let broker = InMemoryBroker()
        let relay = OutboxRelay(outbox: outbox, transport: InMemoryTransport(broker: broker))
        #expect(try await relay.relayBatch() == 1)
        try outbox.enqueue([slip("s-1", variables: ["n": 3])])
        #expect(try await relay.relayBatch() == 0)
        let published = await broker.publishedMessages
        #expect(published.count == 1)
        let first = try SlipSender.message(
            for: slip("s-1", variables: ["n": 1]), topology: topology, codec: SlipCodec(), signing: nil)
        #expect(published.first?.body == first.body)
    }

    @Test("after failed publishes the slip waits out a growing backoff, with its attempts and error recorded")
    func backoffAfterFailures() async throws {
        let broker = InMemoryBroker()
        let transport = FlakyTransport(broker: broker, failures: 2)
        var configuration = OutboxRelay.Configuration()
        configuration.initialBackoff = .seconds(10)
        let relay = OutboxRelay(outbox: outbox, transport: transport, configuration: configuration)
        try placeOrder("1")
        // An hour ahead: the relay measures a backoff from the later of `now` and the clock, so a test that runs
        // slowly (a loaded machine) must not let the clock overtake the times it passes.
        let start = Date().addingTimeInterval(3600)
        #expect(try await relay.relayBatch(now: start) == 0)
        var entry = try #require(try entries().first)
        #expect(entry.attempts == 1)
        #expect(entry.lastError?.contains("broker down") == true)
        // Not due before its backoff: not even tried.
        #expect(try await relay.relayBatch(now: start.addingTimeInterval(5)) == 0)
        #expect(transport.publishAttempts == 1)
        #expect(try await relay.relayBatch(now: start.addingTimeInterval(11)) == 0)
        entry = try #require(try entries().first)
        #expect(entry.attempts == 2)
        // The second wait is twice the first (20 s): not due at +25 s, due at +32 s.
        #expect(try await relay.relayBatch(now: start.addingTimeInterval(25)) == 0)
        #expect(transport.publishAttempts == 2)
        #expect(try await relay.relayBatch(now: start.addingTimeInterval(32)) == 1)
        #expect(await broker.queueDepth(topology.executeQueue(step: "a")) == 1)
        entry = try #require(try entries(includingSent: true).first)
        #expect(entry.attempts == 2 && entry.sentAt != nil && entry.lastError == nil)
    }

    @Test("the backoff doubles and stops at its cap")
    func backoffCapped() {
        var configuration = OutboxRelay.Configuration()
        configuration.initialBackoff = .seconds(1)
        configuration.maxBackoff = .seconds(60)
        #expect((1...8).map { configuration.backoff(afterAttempts: $0) }.map(\.components.seconds) == [1, 2, 4, 8, 16, 32, 60, 60])
        #expect(configuration.backoff(afterAttempts: 1_000) == .seconds(60))
    }

    @Test("`slip outbox retry` makes a slip in its backoff due now")
    func retryMakesDue() async throws {
        let broker = InMemoryBroker()
        let relay = OutboxRelay(outbox: outbox, transport: FlakyTransport(broker: broker, failures: 1))
        try placeOrder("1")
        #expect(try await relay.relayBatch() == 0)
        #expect(try await relay.relayBatch() == 0)  // in its backoff
        let inspector = try OutboxInspector(path: path)
        #expect(try inspector.retry(slipID: "slip-unknown").isEmpty)
        #expect(try inspector.retry(slipID: "slip-1") == ["slip-1"])
        #expect(try await relay.relayBatch() == 1)
        #expect(try inspector.retry().isEmpty)
    }

    @Test("as a Service, the relay gets through failures to publish everything, then stops on a graceful shutdown")
    func serviceRetriesUntilSent() async throws {
        let broker = InMemoryBroker()
        var configuration = OutboxRelay.Configuration()
        configuration.pollInterval = .milliseconds(10)
        configuration.initialBackoff = .milliseconds(10)
        configuration.maxBackoff = .milliseconds(40)
        configuration.batchSize = 2
        let relay = OutboxRelay(
            outbox: outbox, transport: FlakyTransport(broker: broker, failures: 3), configuration: configuration)
        for id in 1...5 { try placeOrder("\(id)") }
        let group = ServiceGroup(services: [relay], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        #expect(await broker.waitForDepth(topology.executeQueue(step: "a"), atLeast: 5, timeout: .seconds(30)))
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(try entries().isEmpty)
        #expect(await broker.publishCount == 5)
        // The three failures each counted an attempt for the slips of their batch (one or two): which slips, depends
        // on which were due when.
        let attempts = try entries(includingSent: true).map(\.attempts).reduce(0, +)
        #expect((3...6).contains(attempts))
    }

    @Test("an enqueue wakes the relay at once, long before its next poll")
    func enqueueWakesTheRelay() async throws {
        let broker = InMemoryBroker()
        var configuration = OutboxRelay.Configuration()
        configuration.pollInterval = .seconds(3600)
        let relay = OutboxRelay(outbox: outbox, transport: InMemoryTransport(broker: broker), configuration: configuration)
        let group = ServiceGroup(services: [relay], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(50))  // let it go to sleep (if not, the test passes anyway)
        try placeOrder("1")
        #expect(await broker.waitForDepth(topology.executeQueue(step: "a"), atLeast: 1, timeout: .seconds(30)))
        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test("sent slips are deleted once past the retention; pending ones never")
    func retention() async throws {
        let relay = OutboxRelay(outbox: outbox, transport: InMemoryTransport(broker: InMemoryBroker()))
        try placeOrder("1")
        #expect(try await relay.relayBatch() == 1)
        try placeOrder("2")
        try await relay.prune(now: Date().addingTimeInterval(3600))
        #expect(try entries(includingSent: true).count == 2)
        try await relay.prune(now: Date().addingTimeInterval(2 * 86_400))
        #expect(try entries(includingSent: true).map(\.slipID) == ["slip-2"])
    }

    @Test("an invalid slip is refused at enqueue, and its transaction with it")
    func invalidSlipRefused() throws {
        #expect(throws: (any Error).self) {
            try database.write { db in
                try db.execute(sql: "INSERT INTO orders (id) VALUES ('x')")
                try outbox.enqueue(slip("bad id with spaces", steps: []), in: db)
            }
        }
        #expect(try database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM orders") } == 0)
        #expect(try entries().isEmpty)
    }
}
