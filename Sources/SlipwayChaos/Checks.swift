import Foundation
import Slipway
import SlipwayOperations

/// One verdict of the run.
struct CheckResult: Sendable, Codable {
    /// Short name, as printed: `lost`, `doubled`, ...
    var name: String
    /// What is counted, in words.
    var meaning: String
    var found: Int
    var expected: String
    var passed: Bool
    /// A few of the culprits (slip ids and what is wrong), for a first look.
    var examples: [String]
}

/// What the faults did, as counted by the driver.
struct FaultTally: Sendable, Codable {
    var killsPlanned = 0
    var kills: [String: Int] = [:]
    var brokerRestartsPlanned = 0
    var brokerRestarts: [BrokerControl.Restart] = []
    var unexpectedExits: [UnexpectedExit] = []
}

/// The checks, from the files the run left and the terminal events the driver received. Each counts culprits; a
/// check passes when it counts none (or, for the faults, when they all happened).
struct Checks {
    let orders: [Order]
    let ends: [String: SlipEvent]
    let evidence: Evidence
    let parked: [ParkedMessage]
    let faults: FaultTally
    /// What went in through the order API, and its database at the end: the `outbox` check.
    var producer: (record: ProducerRecord, evidence: ProducerEvidence)? = nil

    /// Each step's effect and undo, as the ledger journals them or the warehouse counts them (notify-customer has no
    /// undo).
    static let effects: [String: (effect: String, undo: String?)] = [
        "reserve-stock": ("reserve", "release"), "charge-card": ("charge", "refund"),
        "ship-order": ("ship", "cancel-shipment"), "notify-customer": ("notify", nil),
    ]
    /// Steps whose effect is rows in their hop record's database, written in the hop's transaction: no call to
    /// request again, and once per database by construction.
    static let inboxSteps: Set<String> = ["reserve-stock"]
    private static let inboxActions = Set(inboxSteps.flatMap { [effects[$0]?.effect, effects[$0]?.undo].compactMap { $0 } })

    /// Whether the checks on the effects leave this action of this slip to `runTwice`: an inbox step's effect of a
    /// slip whose hops two processes with records of their own ran, each in its own database (where `doubled` still
    /// counts it once at most), or whose undo ran in another database than its effect.
    private func leftToRunTwice(_ slipID: String, _ action: String) -> Bool {
        Self.inboxActions.contains(action)
            && (evidence.slipsRecordedTwice.contains(slipID) || evidence.undoneElsewhere[slipID] != nil)
    }

    func run() -> [CheckResult] {
        [
            lost(), wrongEnd(), doubled(), runTwice(), effectsWithoutHop(), netEffect(), stock(), missing(), duplicate(),
            parkedCheck(), kills(), brokerRestarts(), unexpectedExits(),
        ] + (producer.map { [outbox($0.record, $0.evidence)] } ?? [])
    }

    // MARK: The slips

    private var terminalRows: [String: [Evidence.AuditRow]] {
        Dictionary(grouping: evidence.audit.filter { $0.kind == "terminal" }, by: \.slipID)
    }

    private var parkedSlips: Set<String> {
        Set(evidence.audit.filter { $0.kind == "parked" }.map(\.slipID)).union(parked.compactMap(\.slipId))
    }

    /// How the slip ended: its terminal row in the audit trail, else the terminal event the driver received.
    private func finalState(_ slipID: String, _ terminal: [String: [Evidence.AuditRow]]) -> String? {
        terminal[slipID]?.first?.outcome ?? ends[slipID]?.state.rawValue
    }

    func lost() -> CheckResult {
        let terminal = terminalRows
        let parkedSlips = self.parkedSlips
        let lost = orders.filter { terminal[$0.slipID] == nil && ends[$0.slipID] == nil && !parkedSlips.contains($0.slipID) }
        return result(
            "lost", "slips sent that never ended (no terminal row, no terminal event) and were not parked", lost.count,
            lost.map { "\($0.slipID) (\($0.fate.rawValue))" })
    }

    func wrongEnd() -> CheckResult {
        let terminal = terminalRows
        let wrong = orders.compactMap { order -> String? in
            guard let state = finalState(order.slipID, terminal), state != order.fate.expectedState.rawValue else {
                return nil
            }
            return "\(order.slipID) (\(order.fate.rawValue)) ended \(state), not \(order.fate.expectedState.rawValue)"
        }
        return result("wrong end", "slips that ended otherwise than their input calls for", wrong.count, wrong)
    }

    // MARK: The ledger

    func doubled() -> CheckResult {
        // The inbox step's effects summed over databases are counted per database below.
        var doubled = orders.flatMap { order in
            (evidence.ledger[order.slipID]?.journal ?? [:]).filter { $0.value > 1 && !Self.inboxActions.contains($0.key) }
                .sorted { $0.key < $1.key }.map { "\(order.slipID): \($0.key) applied \($0.value) times" }
        }
        for warehouse in evidence.warehouses {
            for order in orders {
                guard let reservations = warehouse.reservations[order.slipID] else { continue }
                for (action, count) in [("reserve", reservations.made), ("release", reservations.releases)] where count > 1 {
                    doubled.append("\(order.slipID): \(action) applied \(count) times in \(warehouse.source)")
                }
            }
        }
        return result(
            "doubled", "effects or undos applied more than once for one step of one slip (in the ledger, or in one database)",
            doubled.count, doubled)
    }

    /// Per step, the times an effect was asked for again after it was applied: the external systems' calls beyond
    /// the first, and for an inbox step its effects beyond the first in one database (0 by construction: the hop's
    /// record commits with them, and a hop that finds its record does not run the handler).
    func effectsRequestedAgain() -> [String: Int] {
        var again: [String: Int] = [:]
        for (step, actions) in Self.effects {
            again[step] = orders.reduce(0) { sum, order in
                if Self.inboxSteps.contains(step) {
                    return sum + evidence.warehouses.reduce(0) { sum, warehouse in
                        let reservations = warehouse.reservations[order.slipID] ?? .init()
                        return sum + max(0, reservations.made - 1) + max(0, reservations.releases - 1)
                    }
                }
                return sum + max(0, (evidence.ledger[order.slipID]?.calls[actions.effect] ?? 0) - 1)
            }
        }
        return again
    }

    /// A hop that two processes each ran to the end and recorded: instances of a step that do not share their hop
    /// record run a duplicate or a redelivery that reaches the other one again. And an inbox step's undo run by
    /// another instance than its effect, in a database without it: the same cause (its rows are apart too). 0
    /// wherever the record is shared.
    func runTwice() -> CheckResult {
        let undoneElsewhere = orders.compactMap { order in
            evidence.undoneElsewhere[order.slipID].map { "\(order.slipID): \($0)" }
        }
        return result(
            "run-twice",
            "hops run to the end and recorded by two processes, or an inbox step's undo run apart from its effect "
                + "(the hop record is not shared)",
            evidence.hopsRecordedTwice.count + undoneElsewhere.count, evidence.hopsRecordedTwice + undoneElsewhere)
    }

    /// The hops a slip took: its final log when it holds them all (a slip carries only its newest hops, from sequence
    /// 0 until it has more than `Slip.carriedLogEntries`), else the processors' hop records.
    private func hops(_ slipID: String, _ records: [String: [Evidence.HopRecordRow]]) -> [(step: String, kind: String, completed: Bool)] {
        if let log = ends[slipID]?.log, log.first?.sequence ?? 0 == 0 {
            return log.map { ($0.step, $0.kind.rawValue, $0.outcome == .completed) }
        }
        return (records[slipID] ?? []).map { ($0.step, $0.kind, $0.outcome == "completed" || $0.outcome == "compensated") }
    }

    /// An inbox step's effects of a slip run twice are `runTwice`'s (`leftToRunTwice`).
    func effectsWithoutHop() -> CheckResult {
        let records = Dictionary(grouping: evidence.hopRecords, by: \.slipID)
        var culprits: [String] = []
        for order in orders {
            var expected: [String: Int] = [:]
            for hop in hops(order.slipID, records) where hop.completed {
                guard let actions = Self.effects[hop.step] else { continue }
                if hop.kind == "execute" {
                    expected[actions.effect, default: 0] += 1
                } else if let undo = actions.undo {
                    expected[undo, default: 0] += 1
                }
            }
            let journal = evidence.ledger[order.slipID]?.journal ?? [:]
            for action in Set(expected.keys).union(journal.keys).sorted() where !leftToRunTwice(order.slipID, action) {
                let applied = journal[action] ?? 0
                let wanted = expected[action] ?? 0
                // More than once is `doubled`'s to count.
                if applied != wanted && applied <= 1 {
                    culprits.append("\(order.slipID): \(action) applied \(applied) times, its hops say \(wanted)")
                }
            }
        }
        return result(
            "unmatched", "effects with no completed hop behind them, or completed hops with no effect",
            culprits.count, culprits)
    }

    /// Reservations of a slip run twice, or undone in another database, are `runTwice`'s (`leftToRunTwice`).
    func netEffect() -> CheckResult {
        let terminal = terminalRows
        let culprits = orders.compactMap { order -> String? in
            guard let state = finalState(order.slipID, terminal), state == "compensated" || state == "faulted",
                let ledger = evidence.ledger[order.slipID]
            else { return nil }
            let reservations = leftToRunTwice(order.slipID, "release") ? 0 : ledger.reservationsInForce
            let inForce = [
                ("reservations", reservations), ("charges", ledger.chargesInForce),
                ("shipments", ledger.shipmentsInForce),
            ].filter { $0.1 > 0 }
            guard !inForce.isEmpty else { return nil }
            return "\(order.slipID) (\(state)): " + inForce.map { "\($0.1) \($0.0)" }.joined(separator: ", ") + " in force"
        }
        return result("net effect", "compensated or faulted slips that left something in force", culprits.count, culprits)
    }

    func stock() -> CheckResult {
        // No warehouse read is a wrong place looked at, not a clean run.
        let none = evidence.stock.isEmpty ? ["no warehouse stock found in any hop record database"] : []
        let culprits = none + evidence.stock.filter { $0.available + $0.reservedInForce != $0.initial }.map {
            "\($0.sku) in \($0.source): \($0.available) available + \($0.reservedInForce) reserved != \($0.initial) at the start"
        }
        return result(
            "stock", "articles whose available and reserved stock do not add up to the initial stock (per database)",
            culprits.count, culprits)
    }

    // MARK: The audit trail

    /// A hop as the checks compare it: `slip|sequence|kind`, plus attempt and outcome where the source knows them.
    private static func hopKey(_ slipID: String, _ sequence: Int, _ kind: String) -> String { "\(slipID)|\(sequence)|\(kind)" }

    /// Every hop the final logs or the hop records say happened needs an audit row with the same slip, sequence, kind
    /// and outcome (and attempt, which the log knows); every end and every parked message needs its row too.
    func missing() -> CheckResult {
        var exact = Set<String>()
        var outcomes = Set<String>()
        var terminal = Set<String>()
        var parkedRows = Set<String>()
        for row in evidence.audit {
            switch row.kind {
            case "terminal": terminal.insert(row.slipID)
            case "parked": parkedRows.insert(row.slipID)
            default:
                exact.insert("\(Self.hopKey(row.slipID, row.sequence, row.kind))|\(row.attempt)|\(row.outcome)")
                outcomes.insert("\(Self.hopKey(row.slipID, row.sequence, row.kind))|\(row.outcome)")
            }
        }
        // By hop (slip, sequence, kind), so that a hop both sources know is counted once.
        var culprits: [String: String] = [:]
        for (slipID, end) in ends {
            if !terminal.contains(slipID) { culprits["\(slipID)|end"] = "\(slipID): its end (\(end.state.rawValue))" }
            for entry in end.log ?? [] {
                let hop = Self.hopKey(slipID, entry.sequence, entry.kind.rawValue)
                if !exact.contains("\(hop)|\(entry.attempt)|\(entry.outcome.rawValue)") {
                    culprits[hop] = "\(slipID): hop \(entry.sequence) \(entry.kind.rawValue) \(entry.step) "
                        + "(attempt \(entry.attempt), \(entry.outcome.rawValue))"
                }
            }
        }
        for record in evidence.hopRecords {
            // The record says `compensated` where the hop's log entry (and so its event) says `completed`.
            let outcome = record.outcome == "compensated" ? "completed" : record.outcome
            let hop = Self.hopKey(record.slipID, record.sequence, record.kind)
            if !outcomes.contains("\(hop)|\(outcome)"), culprits[hop] == nil {
                culprits[hop] = "\(record.slipID): hop \(record.sequence) \(record.kind) \(record.step) (\(outcome))"
            }
        }
        for message in parked {
            if let slipID = message.slipId, !parkedRows.contains(slipID) {
                culprits["\(slipID)|parked"] = "\(slipID): its parking (\(message.reasonCode ?? "?"))"
            }
        }
        return result("missing", "hops, ends and parkings with no audit row", culprits.count, culprits.values.sorted())
    }

    /// "Same hop": the same slip, sequence and kind (execute or compensate). A hop may have several rows only for
    /// attempts that threw (outcome `retried`), one per attempt; its final outcome (completed, faulted, failed,
    /// terminated) has one row. A redelivered event has the same id (`<slip>.<sequence>.<kind>.<attempt>`) and must
    /// not add a row; so must an event published again after a kill. A slip has one terminal row and at most one
    /// parked row per sequence.
    func duplicate() -> CheckResult {
        var counts: [String: Int] = [:]
        for row in evidence.audit {
            switch row.kind {
            case "terminal": counts["\(row.slipID): terminal", default: 0] += 1
            case "parked": counts["\(row.slipID): parked at hop \(row.sequence)", default: 0] += 1
            default:
                counts["\(row.slipID): hop \(row.sequence) \(row.kind) attempt \(row.attempt)", default: 0] += 1
                if row.outcome != HopOutcome.retried.rawValue {
                    counts["\(row.slipID): hop \(row.sequence) \(row.kind), final outcome", default: 0] += 1
                }
            }
        }
        let culprits = counts.filter { $0.value > 1 }.map { "\($0.key): \($0.value) rows" }.sorted()
        return result("duplicate", "hops (slip, sequence, kind) with more than one row for one attempt or for their end", culprits.count, culprits)
    }

    // MARK: The faults

    func parkedCheck() -> CheckResult {
        let rows = evidence.audit.filter { $0.kind == "parked" }
        let examples = parked.map { "\($0.slipId ?? "?"): \($0.reasonCode ?? "?") \($0.reason ?? "")" }
            + rows.map { "\($0.slipID): parked at hop \($0.sequence) (\($0.outcome)), audit row" }
        return result(
            "parked", "messages in the dead-letter queue (or parked rows in the audit trail)", max(parked.count, rows.count),
            examples)
    }

    func kills() -> CheckResult {
        let done = faults.kills.values.reduce(0, +)
        return CheckResult(
            name: "kills", meaning: "processes SIGKILLed (by type below)", found: done,
            expected: "\(faults.killsPlanned)", passed: done == faults.killsPlanned, examples: [])
    }

    func brokerRestarts() -> CheckResult {
        let done = faults.brokerRestarts.filter(\.ok).count
        let failed = faults.brokerRestarts.filter { !$0.ok }.map { "a restart failed (\($0.status)) after \(Int($0.seconds)) s" }
        return CheckResult(
            name: "broker restarts", meaning: "RabbitMQ restarts done", found: done,
            expected: "\(faults.brokerRestartsPlanned)", passed: done == faults.brokerRestartsPlanned && failed.isEmpty,
            examples: failed)
    }

    func unexpectedExits() -> CheckResult {
        result(
            "exits", "processes that ended without being killed", faults.unexpectedExits.count,
            faults.unexpectedExits.map { "\($0.process): \($0.status) after \(Int($0.afterSeconds)) s" })
    }

    private func result(_ name: String, _ meaning: String, _ found: Int, _ examples: [String]) -> CheckResult {
        CheckResult(name: name, meaning: meaning, found: found, expected: "0", passed: found == 0, examples: Array(examples.prefix(5)))
    }
}
