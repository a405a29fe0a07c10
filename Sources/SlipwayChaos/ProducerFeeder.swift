import Foundation
import Slipway
import Synchronization

/// What the driver did through the example order API (Processors/order-api), for the `outbox` check.
struct ProducerRecord: Sendable, Codable {
    /// Orders the API answered as placed (201, or 200 for one placed before), by orderId: their slip ids.
    var placed: [String: String] = [:]
    /// Extra orders whose POST was cut by a kill inside their transaction, and given up: no row, no slip.
    var rolledBack: [String] = []
    var killsPlanned = 0
    var killsInTransaction = 0
    var killsAfterCommit = 0
    /// POSTs that got no answer (the API down, or killed with them) and were sent again with the same orderId.
    var askedAgain = 0
    /// Orders the API refused (a status other than 200 or 201): none expected.
    var refused: [String] = []

    /// The slip the API makes for an order (Processors/order-api/Order.swift).
    static func slipID(order orderID: String) -> String { "order-\(orderID)" }
}

/// Posts the run's share of orders to the order API, one at a time at `interval`, asking again with the same orderId
/// after no answer, until the API answers. Between them it SIGKILLs the API `kills` times, spread over its orders,
/// alternately inside an order's transaction (an extra order, `R-n`, that the API holds open `commitDelayMs` before
/// its commit; the client gives it up: it must leave no row and no slip) and right after an order was placed (its
/// slip may still wait in the outbox: the relay of the next start publishes it). Each kill is followed by a pause
/// and a restart, as the fault plan's are.
struct ProducerFeeder: Sendable {
    static let name = "order-api"
    static let commitDelayMs = 300

    let fleet: Fleet
    let port: Int
    let orders: [Slip]
    let interval: Duration
    let kills: Int
    let log: String

    final class Tally: Sendable {
        private let state = Mutex((record: ProducerRecord(), finished: false))
        var record: ProducerRecord { state.withLock { $0.record } }
        var finished: Bool { state.withLock { $0.finished } }
        func finish() { state.withLock { $0.finished = true } }
        func update(_ body: (inout ProducerRecord) -> Void) { state.withLock { body(&$0.record) } }
    }

    func run(counters: Feeder.Counters, tally: Tally, random: inout SplitMix64) async {
        defer { tally.finish() }
        tally.update { $0.killsPlanned = kills }
        let killBefore = (0..<kills).map { (($0 + 1) * orders.count) / (kills + 1) }
        var pauses = (0..<kills).map { _ in Int.random(in: FaultPlan.pauseMs, using: &random) }
        var due = ContinuousClock.now
        for (index, slip) in orders.enumerated() {
            try? await Task.sleep(until: due)
            due = max(due, .now).advanced(by: interval)
            if Task.isCancelled { return }
            let killing = killBefore.firstIndex(of: index)
            if let killing, killing % 2 == 0 {
                await killInTransaction(number: killing / 2 + 1, pauseMs: pauses.removeFirst(), tally: tally)
            }
            guard await place(slip, tally: tally) else { continue }
            counters.add(sent: 1)
            if let killing, killing % 2 == 1 {
                await kill(pauseMs: pauses.removeFirst()) { tally.update { $0.killsAfterCommit += 1 } }
            }
        }
    }

    /// POSTs the order until the API answers; true if it was placed.
    private func place(_ slip: Slip, tally: Tally) async -> Bool {
        let orderID = slip.variables["orderId"]?.stringValue ?? slip.id
        while !Task.isCancelled {
            switch await OrderPost.send(Self.body(slip.variables), quantity: Self.quantity(slip.variables), port: port) {
            case .status(let code) where code == 201 || code == 200:
                tally.update { $0.placed[orderID] = ProducerRecord.slipID(order: orderID) }
                return true
            case .status(let code):
                tally.update { $0.refused.append("\(orderID): HTTP \(code)") }
                return false
            case .noAnswer:
                tally.update { $0.askedAgain += 1 }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        return false
    }

    /// POSTs an extra order, SIGKILLs the API while that order's transaction is open (half its commit delay after
    /// the POST), and gives the order up.
    private func killInTransaction(number: Int, pauseMs: Int, tally: Tally) async {
        // Only once the API is up again after an earlier kill (any answer, here a refusal of an empty order), so
        // that the POST reaches a transaction.
        while await OrderPost.send([:], quantity: 0, port: port) == .noAnswer, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
        }
        let orderID = "R-\(number)"
        let values = ["orderId": orderID, "sku": "widget", "card": "4242-4242-4242-4242", "country": "DE", "email": "r@example.com"]
        let post = Task { await OrderPost.send(values, quantity: 1, port: port) }
        try? await Task.sleep(for: .milliseconds(Self.commitDelayMs / 2))
        await kill(pauseMs: pauseMs) { tally.update { $0.killsInTransaction += 1 } }
        let answer = await post.value
        tally.update {
            if case .status(let code) = answer {
                // Too late for the transaction: not a rollback, and the outbox check will find the order.
                $0.refused.append("\(orderID): answered HTTP \(code) though killed inside its transaction")
            } else {
                $0.rolledBack.append(orderID)
            }
        }
    }

    private func kill(pauseMs: Int, counted: () -> Void) async {
        appendLine("\(SlipCodec.formatTimestamp(Date())) fault: SIGKILL \(Self.name); starting it again in \(pauseMs) ms", to: log)
        guard await fleet.kill(Self.name) else { return }
        counted()
        try? await Task.sleep(for: .milliseconds(pauseMs))
        do {
            try await fleet.start(Self.name)
        } catch {
            appendLine("cannot start \(Self.name) again: \(error)", to: log)
        }
    }

    /// The order as the API takes it, from the slip's variables (the template's defaults filled in).
    static func body(_ variables: [String: JSONValue]) -> [String: String] {
        var body: [String: String] = [:]
        for key in ["orderId", "sku", "card", "country", "email"] { body[key] = variables[key]?.stringValue }
        return body
    }

    static func quantity(_ variables: [String: JSONValue]) -> Int { Int(variables["quantity"]?.intValue ?? 1) }
}
