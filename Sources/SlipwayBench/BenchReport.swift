import Foundation
import Synchronization
import Slipway

/// The benchmark's results: a table row per run as it ends, the issue's targets at the end, and JSON.
struct BenchReport: Encodable {
    struct Machine: Codable {
        var cores: Int
        var cpu: String
        var memoryGB: Double
    }

    struct Target: Codable {
        var name: String
        var value: Double?
        var goal: String
        var met: Bool?
        /// Why the verdict may not hold, e.g. a baseline that stalled in this run.
        var caveat: String?
        /// The configuration it is about (store, queue type) when the run measured several; nil otherwise.
        var variant: String?
    }

    /// One configuration of the framework's chain side by side with the others: what the issue asks of a store and a
    /// queue type, from the chain-5 runs.
    struct Comparison: Codable {
        var store: String
        var queueType: String
        var hopsPerSecond: Double?
        var processorCPUMicrosPerHop: Double?
        var postgresCPUMicrosPerHop: Double?
        var brokerCPUMicrosPerHop: Double?
        /// End-to-end p99 at 200 slips/s, in ms.
        var p99At200: Double?
    }

    var machine: Machine
    var prefetch: Int
    var concurrency: Int
    var auditSink: Bool
    var runs: [BenchRun] = []
    /// Bytes of the slip a chain-K's last processor receives, by K.
    var slipBytesAtLastHop: [String: Int] = [:]
    var targets: [Target] = []
    var comparison: [Comparison] = []
    private let variants: [BenchVariant]
    private let brokerPIDKnown: Bool
    private let postgresPIDKnown: Bool

    init(setup: BenchSetup, brokerPIDKnown: Bool, postgresPIDKnown: Bool = false) {
        let cpuInfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuInfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" }
        machine = Machine(
            cores: ProcessInfo.processInfo.activeProcessorCount, cpu: model ?? "unknown",
            memoryGB: (Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824 * 10).rounded() / 10)
        prefetch = setup.prefetch
        concurrency = setup.concurrency
        auditSink = setup.auditSink
        self.brokerPIDKnown = brokerPIDKnown
        self.postgresPIDKnown = postgresPIDKnown
        variants = setup.variants
    }

    private enum CodingKeys: String, CodingKey {
        case machine, prefetch, concurrency, auditSink, runs, slipBytesAtLastHop, targets, comparison
    }

    /// The table's header; `row` lines up under it.
    static let columns =
        "chain                          store    queues   mode        slips  slips/s   hops/s  µs/hop  cpu µs/hop  sink  broker  postgres  RSS MB  priv MB    p50    p95    p99 ms"

    private static let printedHeader = Mutex(false)

    func print(_ run: BenchRun) {
        if !Self.printedHeader.withLock({ printed in defer { printed = true }; return printed }) {
            Swift.print(Self.columns)
        }
        Swift.print(Self.row(run))
        if run.notEndedAsExpected > 0 {
            Swift.print("  warning: \(run.notEndedAsExpected) slips did not end completed")
        }
        fflush(nil)  // each row as it comes, even into a pipe
    }

    /// A run as a line of the table.
    static func row(_ run: BenchRun) -> String {
        func number(_ value: Double?, _ width: Int, _ digits: Int = 0) -> String {
            guard let value else { return String(repeating: " ", count: width - 1) + "-" }
            return String(format: "%\(width).\(digits)f", value)
        }
        func text(_ value: String, _ width: Int) -> String { value.padding(toLength: width, withPad: " ", startingAt: 0) }
        let label = run.mode == "latency" ? "\(run.chain) @\(Int(run.rate ?? 0))/s" : run.chain
        return [
            text(label, 30), text(run.store ?? "-", 8), text(run.queueType, 8), text(run.mode, 10),
            number(Double(run.slips), 6), number(run.slipsPerSecond, 8), number(run.hopsPerSecond, 8),
            number(run.microsPerHop, 7), number(run.workerCPUMicrosPerHop, 11), number(run.sinkCPUMicrosPerHop, 5),
            number(run.brokerCPUMicrosPerHop, 7), number(run.postgresCPUMicrosPerHop, 9), number(run.workerPeakRSSMB, 7, 1),
            number(run.workerPrivateMB, 8, 1), number(run.endToEnd?.p50, 6, 1), number(run.endToEnd?.p95, 6, 1),
            number(run.endToEnd?.p99, 6, 1),
        ].joined(separator: " ")
    }

    /// The issue's targets, each with its figure from this run (nil when the run did not measure it), for each
    /// configuration of the framework's chain, and the configurations side by side when there are several.
    mutating func printSummary() {
        computeSummary()
        Swift.print("\ntargets")
        var heading: String?
        for target in targets {
            if target.variant != heading, let variant = target.variant {
                Swift.print("  \(variant)")
            }
            heading = target.variant
            let indent = target.variant == nil ? "  " : "    "
            let value = target.value.map { String(format: "%.2f", $0) } ?? "not measured"
            let verdict = target.met.map { $0 ? "met" : "MISSED" } ?? ""
            Swift.print("\(indent)\(target.name.padding(toLength: 66, withPad: " ", startingAt: 0)) \(value.padding(toLength: 13, withPad: " ", startingAt: 0)) (\(target.goal)) \(verdict)")
            if let caveat = target.caveat { Swift.print("\(indent)  but \(caveat)") }
        }
        if comparison.count > 1 {
            Swift.print("\nstores and queue types, chain-5    hops/s  cpu µs/hop: processors  postgres  broker   p99 ms at 200/s")
            for row in comparison {
                func number(_ value: Double?, _ width: Int, _ digits: Int = 0) -> String {
                    guard let value else { return String(repeating: " ", count: width - 1) + "-" }
                    return String(format: "%\(width).\(digits)f", value)
                }
                let name = "\(row.store) store, \(row.queueType) queues".padding(toLength: 32, withPad: " ", startingAt: 0)
                Swift.print(
                    "  \(name) \(number(row.hopsPerSecond, 8)) \(number(row.processorCPUMicrosPerHop, 23)) \(number(row.postgresCPUMicrosPerHop, 9)) \(number(row.brokerCPUMicrosPerHop, 7)) \(number(row.p99At200, 17, 1))")
            }
        }
        if !slipBytesAtLastHop.isEmpty {
            let sizes = slipBytesAtLastHop.sorted { Int($0.key)! < Int($1.key)! }.map { "K=\($0.key): \($0.value) B" }
            Swift.print("  slip size at the last hop: \(sizes.joined(separator: ", "))")
        }
        let privateMemory = runs.filter { $0.chain.hasPrefix("slipway") }.map(\.workerPrivateMB).max()
        let privateNote = privateMemory.map { String(format: "at most %.1f MB of a processor's resident memory is private; the rest is code and data shared with every process that maps the same libraries", $0) } ?? ""
        let postgresNote =
            variants.contains(where: { $0.storeName == "postgres" }) && !postgresPIDKnown
            ? "; PostgreSQL CPU not measured (--postgres-pid-file)" : ""
        Swift.print(
            "  machine: \(machine.cores) cores, \(machine.cpu), \(machine.memoryGB) GB; prefetch \(prefetch), concurrency \(concurrency), audit sink \(auditSink ? "on" : "off")"
                + (brokerPIDKnown ? "" : "; broker CPU not measured (--broker-pid-file)") + postgresNote)
        if variants.contains(where: { $0.queueType != .classic }) {
            Swift.print("  the bare forwarder's queues are classic in every run")
        }
        if !privateNote.isEmpty { Swift.print("  memory: \(privateNote)") }
    }

    /// Fills `targets` and `comparison` from the runs.
    mutating func computeSummary() {
        func find(_ system: String, _ mode: String, hops: Int, rate: Double? = nil, variant: BenchVariant? = nil) -> BenchRun? {
            runs.last { run in
                run.chain.hasPrefix(system) && run.mode == mode && run.hops == hops && (rate == nil || run.rate == rate)
                    && (variant.map { run.store == $0.storeName && run.queueType == $0.queueType.rawValue } ?? true)
            }
        }
        func ratio(_ a: Double?, _ b: Double?) -> Double? {
            guard let a, let b, b > 0 else { return nil }
            return (a / b * 100).rounded() / 100
        }
        let bare5 = find("bare", "throughput", hops: 5) ?? find("bare", "scaling", hops: 5)
        let bareLatency = find("bare", "latency", hops: 5, rate: 200)?.endToEnd
        // One run's p99 is a handful of slips: a single stall of the forwarder decides it.
        let bareStalled = bareLatency.flatMap { $0.p99 > 2 * $0.p95 ? $0 : nil }.map {
            String(format: "the forwarder's p99 (%.1f ms) is over twice its p95 (%.1f ms): a stall; run again", $0.p99, $0.p95)
        }
        targets = []
        comparison = []
        for variant in variants {
            let name = variants.count > 1 ? variant.label : nil
            let slipway5 = find("slipway", "throughput", hops: 5, variant: variant) ?? find("slipway", "scaling", hops: 5, variant: variant)
            let throughputRatio = ratio(slipway5?.hopsPerSecond, bare5?.hopsPerSecond)
            let latency200 = find("slipway", "latency", hops: 5, rate: 200, variant: variant)
            let p99Ratio = ratio(latency200?.endToEnd?.p99, bareLatency?.p99)
            let perHop2 = (find("slipway", "scaling", hops: 2, variant: variant) ?? find("slipway", "throughput", hops: 2, variant: variant))?.microsPerHop
            let perHop25 = (find("slipway", "scaling", hops: 25, variant: variant) ?? find("slipway", "throughput", hops: 25, variant: variant))?.microsPerHop
            let scalingRatio = ratio(perHop25, perHop2)
            let mine = runs.filter { $0.store == variant.storeName && $0.queueType == variant.queueType.rawValue }
            let peakRSS = mine.map(\.workerPeakRSSMB).max()
            targets += [
                Target(name: "chain-5 hops/s, slipway ÷ bare forwarder", value: throughputRatio, goal: "≥ 0.6", met: throughputRatio.map { $0 >= 0.6 }, variant: name),
                Target(
                    name: "chain-5 end-to-end p99 at 200 slips/s, slipway ÷ bare forwarder", value: p99Ratio, goal: "≤ 2",
                    met: p99Ratio.map { $0 <= 2 }, caveat: bareStalled, variant: name),
                Target(name: "time per hop, chain-25 ÷ chain-2", value: scalingRatio, goal: "≤ 1.5", met: scalingRatio.map { $0 <= 1.5 }, variant: name),
                Target(name: "peak resident memory of one processor, MB", value: peakRSS, goal: "< 30", met: peakRSS.map { $0 < 30 }, variant: name),
            ]
            comparison.append(
                Comparison(
                    store: variant.storeName, queueType: variant.queueType.rawValue, hopsPerSecond: slipway5?.hopsPerSecond,
                    processorCPUMicrosPerHop: slipway5?.workerCPUMicrosPerHop,
                    postgresCPUMicrosPerHop: slipway5?.postgresCPUMicrosPerHop,
                    brokerCPUMicrosPerHop: slipway5?.brokerCPUMicrosPerHop, p99At200: latency200?.endToEnd?.p99))
        }
        // Against the limit, when the C forwarder ran (--c-limit): issue 21's targets.
        if let limit5 = find("C forwarder", "throughput", hops: 5) {
            let bareRatio = ratio(bare5?.hopsPerSecond, limit5.hopsPerSecond)
            targets.append(
                Target(
                    name: "chain-5 hops/s, bare forwarder ÷ C forwarder", value: bareRatio, goal: "≥ 0.8",
                    met: bareRatio.map { $0 >= 0.8 }))
            for entry in comparison {
                let value = ratio(entry.hopsPerSecond, limit5.hopsPerSecond)
                targets.append(
                    Target(
                        name: "chain-5 hops/s, slipway ÷ C forwarder", value: value, goal: "≥ 0.3", met: value.map { $0 >= 0.3 },
                        variant: variants.count > 1 ? "\(entry.store) store, \(entry.queueType) queues" : nil))
                let broker = ratio(entry.brokerCPUMicrosPerHop, limit5.brokerCPUMicrosPerHop)
                targets.append(
                    Target(
                        name: "broker CPU per hop, slipway ÷ C forwarder", value: broker, goal: "≤ 2.5",
                        met: broker.map { $0 <= 2.5 }, variant: variants.count > 1 ? "\(entry.store) store, \(entry.queueType) queues" : nil))
            }
        }
        // The issue's target for the shared record: at least half the SQLite store's hops/s, on the same queues.
        for type in QueueType.allCases {
            guard let sqlite = comparison.first(where: { $0.store == "sqlite" && $0.queueType == type.rawValue }),
                let postgres = comparison.first(where: { $0.store == "postgres" && $0.queueType == type.rawValue })
            else { continue }
            let value = ratio(postgres.hopsPerSecond, sqlite.hopsPerSecond)
            targets.append(
                Target(
                    name: "chain-5 hops/s, PostgreSQL store ÷ SQLite store", value: value, goal: "≥ 0.5",
                    met: value.map { $0 >= 0.5 }, variant: variants.count > 2 ? "\(type.rawValue) queues" : nil))
        }
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// The bytes of the slip the last of K probe-steps receives: the transitions its K-1 predecessors made (each adds
    /// a log entry, an undo record and a variable, as probe-step does), encoded by the same codec.
    static func slipBytesAtLastHop(hops: Int) throws -> Int {
        let topology = Topology(prefix: "bench")
        var slip = Slip(template: "bench-chain-\(hops)", itinerary: (1...hops).map { ItineraryStep(step: "s\($0)") })
        for index in 1..<hops {
            let step = "s\(index)"
            slip.completeStep(
                compensationData: ["step": .string(step)], compensateAddress: topology.compensateQueue(step: step),
                variableUpdates: ["\(step)At": .string(SlipCodec.formatTimestamp(Date()))],
                entry: LogEntry(
                    sequence: slip.sequence, step: step, kind: .execute, outcome: .completed, attempt: 1,
                    startedAt: Date(), durationMicros: 120, processor: "bench-host:12345"))
        }
        return try SlipCodec().encode(slip).count
    }
}
