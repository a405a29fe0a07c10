import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Slipway
import SlipwayAMQP
import SlipwayOutbox
import SlipwayPostgres
import Synchronization

/// A producer through the outbox, for the outbox's kill tests and its throughput figures:
/// `outbox-producer (--db PATH | --postgres URL) [--orders N] [--rollback-every K] [--steps a,b] [--relays R]`.
/// It opens the app's database (SQLite file, or PostgreSQL as a processor's `--store` URL) with an `orders` table,
/// writes orders 1 to N, each with its slip (id `slip-order-I`, through the steps given) in one transaction, rolling
/// back every K-th after its slip was enqueued; orders already there are skipped, so a second run writes only what the
/// first did not. Then it runs R relays (PostgreSQL only for R > 1: they share the table) until nothing is pending,
/// and exits 0 (1 if SIGTERM stopped it first). The broker and queue prefix are the processors' (`SLIPWAY_AMQP_URL`,
/// `SLIPWAY_QUEUE_PREFIX`); `SLIPWAY_FAILPOINT=outbox-before-publish` kills it before its relays' first publish.
/// Prints what it committed and relayed, and how fast.

/// Set once the service group has ended.
final class StopFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

func report(_ what: String, _ count: Int, since start: ContinuousClock.Instant) {
    let seconds = (ContinuousClock.now - start).seconds
    let rate = seconds > 0 ? Int(Double(count) / seconds) : 0
    print("\(what) \(count) in \(String(format: "%.2f", seconds)) s (\(rate)/s)")
}

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("outbox-producer: \(message)\n".utf8))
    exit(status)
}

let options: Options
do {
    options = try Options(Array(CommandLine.arguments.dropFirst()))
} catch {
    fail("\(error)", status: 2)
}
var logger = Logger(label: "outbox-producer")
logger.logLevel = .warning

let environment = ProcessInfo.processInfo.environment
let topology = Topology(prefix: environment["SLIPWAY_QUEUE_PREFIX"] ?? "slipway")
// PostgreSQL's client runs for the whole program: the orders are written through it before the relays start.
var postgresClient: (client: PostgresClient, task: Task<Void, Never>)?
let orders: any OrderDatabase
if options.postgres.isEmpty {
    orders = try SQLiteOrders(path: options.db, topology: topology)
} else {
    let client = try PostgresOutbox.client(url: options.postgres, maximumConnections: options.relays + 2, logger: logger)
    postgresClient = (client, Task { await client.run() })
    orders = try await PostgresOrders(client: client, topology: topology, logger: logger)
}

// The app's side: each order and its slip in one transaction.
let writing = ContinuousClock.now
var committed = 0
for index in stride(from: 1, through: options.orders, by: 1) {
    let orderID = "order-\(index)"
    let slip = Slip(
        id: "slip-\(orderID)", template: "outbox-order",
        itinerary: options.steps.map { ItineraryStep(step: $0) }, variables: ["orderId": .string(orderID)])
    let rollBack = options.rollbackEvery > 0 && index % options.rollbackEvery == 0
    if try await orders.place(orderID, slip: slip, rollBack: rollBack) { committed += 1 }
}
report("committed", committed, since: writing)

// The relays, until nothing is pending.
let transport = AMQPTransport(configuration: try AMQPConfiguration.fromEnvironment(), logger: logger)
let relays: [any Service] = (0..<options.relays).map { _ in
    OutboxRelay(outbox: orders.outbox, transport: transport, logger: logger)
}
let group = ServiceGroup(
    configuration: .init(
        services: [transport] + relays, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
let relaying = ContinuousClock.now
let toRelay = try await orders.pendingCount()
let stopped = StopFlag()
// SIGTERM ends the group (the relays finish their batch first): then stop waiting, whatever is still pending.
let running = Task {
    defer { stopped.set() }
    try await group.run()
}
while try await orders.pendingCount() > 0, !stopped.isSet { try await Task.sleep(for: .milliseconds(20)) }
await group.triggerGracefulShutdown()
try await running.value
let left = try await orders.pendingCount()
if let postgresClient {
    postgresClient.task.cancel()
    await postgresClient.task.value
}
guard left == 0 else { fail("stopped with \(left) slip(s) pending", status: 1) }
report("relayed", toRelay, since: relaying)
// Out explicitly: returning from the top-level code leaves the process waiting on NIO's event loop threads.
exit(0)
