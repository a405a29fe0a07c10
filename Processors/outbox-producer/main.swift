import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Slipway
import SlipwayAMQP
import SlipwayOutbox
import Synchronization

/// A producer through the outbox, for the outbox's kill test and its throughput figure:
/// `outbox-producer --db PATH [--orders N] [--rollback-every K] [--steps a,b]`.
/// It opens the app's SQLite file (an `orders` table), writes orders 1 to N, each with its slip (id `slip-order-I`,
/// through the steps given) in one transaction, rolling back every K-th after its slip was enqueued; orders already
/// there are skipped, so a second run writes only what the first did not. Then it runs the relay until nothing is
/// pending, and exits 0 (1 if SIGTERM stopped it first). The broker and queue prefix are the processors' (`SLIPWAY_AMQP_URL`,
/// `SLIPWAY_QUEUE_PREFIX`); `SLIPWAY_FAILPOINT=outbox-before-publish` kills it before its relay's first publish.
/// Prints what it committed and relayed, and how fast.
struct Options {
    var db = ""
    var orders = 10
    var rollbackEvery = 0
    var steps = ["a", "b"]

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        while let name = rest.popFirst() {
            guard let value = rest.popFirst() else { throw OptionsError("\(name) needs a value") }
            switch name {
            case "--db": db = value
            case "--orders": orders = try Self.count(name, value)
            case "--rollback-every": rollbackEvery = try Self.count(name, value)
            case "--steps": steps = value.split(separator: ",").map(String.init)
            default: throw OptionsError("unknown option \(name)")
            }
        }
        guard !db.isEmpty, !steps.isEmpty else { throw OptionsError("--db PATH is required, and --steps must name one") }
    }

    static func count(_ name: String, _ value: String) throws -> Int {
        guard let count = Int(value), count >= 0 else { throw OptionsError("\(name) takes a count, got \(value)") }
        return count
    }
}

struct OptionsError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Set once the service group has ended.
final class StopFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

/// Thrown inside an order's transaction to roll it back.
struct RolledBack: Error {}

func report(_ what: String, _ count: Int, since start: ContinuousClock.Instant) {
    let seconds = (ContinuousClock.now - start).seconds
    let rate = seconds > 0 ? Int(Double(count) / seconds) : 0
    print("\(what) \(count) in \(String(format: "%.2f", seconds)) s (\(rate)/s)")
}

func pendingCount(_ database: DatabasePool) throws -> Int {
    try database.read { db in
        try Int.fetchOne(db, sql: "SELECT count(*) FROM slipway_outbox WHERE sent_at IS NULL") ?? 0
    }
}

let options: Options
do {
    options = try Options(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("outbox-producer: \(error)\n".utf8))
    exit(2)
}
var logger = Logger(label: "outbox-producer")
logger.logLevel = .warning

let environment = ProcessInfo.processInfo.environment
let topology = Topology(prefix: environment["SLIPWAY_QUEUE_PREFIX"] ?? "slipway")
let database = try DatabasePool(path: options.db)
try database.write { db in
    try db.execute(sql: "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY NOT NULL, created_at TEXT NOT NULL)")
}
let outbox = try SlipOutbox(database: database, topology: topology)

// The app's side: each order and its slip in one transaction.
let writing = ContinuousClock.now
var committed = 0
for index in stride(from: 1, through: options.orders, by: 1) {
    let orderID = "order-\(index)"
    let slip = Slip(
        id: "slip-\(orderID)", template: "outbox-order",
        itinerary: options.steps.map { ItineraryStep(step: $0) }, variables: ["orderId": .string(orderID)])
    do {
        let wrote = try database.write { db in
            guard try Int.fetchOne(db, sql: "SELECT count(*) FROM orders WHERE id = ?", arguments: [orderID]) == 0 else {
                return false
            }
            try db.execute(
                sql: "INSERT INTO orders (id, created_at) VALUES (?, datetime('now'))", arguments: [orderID])
            try outbox.enqueue(slip, in: db)
            if options.rollbackEvery > 0, index % options.rollbackEvery == 0 { throw RolledBack() }
            return true
        }
        if wrote { committed += 1 }
    } catch is RolledBack {}
}
report("committed", committed, since: writing)

// The relay, until nothing is pending.
let transport = AMQPTransport(configuration: try AMQPConfiguration.fromEnvironment(), logger: logger)
let relay = OutboxRelay(outbox: outbox, transport: transport, logger: logger)
let group = ServiceGroup(
    configuration: .init(services: [transport, relay], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
let relaying = ContinuousClock.now
let toRelay = try pendingCount(database)
let stopped = StopFlag()
// SIGTERM ends the group (the relay finishes its batch first): then stop waiting, whatever is still pending.
let running = Task {
    defer { stopped.set() }
    try await group.run()
}
while try pendingCount(database) > 0, !stopped.isSet { try await Task.sleep(for: .milliseconds(20)) }
await group.triggerGracefulShutdown()
try await running.value
let left = try pendingCount(database)
guard left == 0 else {
    FileHandle.standardError.write(Data("outbox-producer: stopped with \(left) slip(s) pending\n".utf8))
    exit(1)
}
report("relayed", toRelay, since: relaying)
