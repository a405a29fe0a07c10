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
    }

    var machine: Machine
    var prefetch: Int
    var concurrency: Int
    var auditSink: Bool
    var runs: [BenchRun] = []
    /// Bytes of the slip a chain-K's last processor receives, by K.
    var slipBytesAtLastHop: [String: Int] = [:]
    var targets: [Target] = []
    private let brokerPIDKnown: Bool

    init(setup: BenchSetup, brokerPIDKnown: Bool) {
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
    }

    private enum CodingKeys: String, CodingKey {
        case machine, prefetch, concurrency, auditSink, runs, slipBytesAtLastHop, targets
    }

    private static let columns =
        "chain                          mode        slips  slips/s   hops/s  µs/hop  cpu µs/hop  sink  broker  RSS MB  priv MB    p50    p95    p99 ms"

    private static let printedHeader = Mutex(false)

    func print(_ run: BenchRun) {
        if !Self.printedHeader.withLock({ printed in defer { printed = true }; return printed }) {
            Swift.print(Self.columns)
        }
        func number(_ value: Double?, _ width: Int, _ digits: Int = 0) -> String {
            guard let value else { return String(repeating: " ", count: width - 1) + "-" }
            return String(format: "%\(width).\(digits)f", value)
        }
        let label = run.mode == "latency" ? "\(run.chain) @\(Int(run.rate ?? 0))/s" : run.chain
        Swift.print(
            [
                label.padding(toLength: 30, withPad: " ", startingAt: 0), run.mode.padding(toLength: 10, withPad: " ", startingAt: 0),
                number(Double(run.slips), 6), number(run.slipsPerSecond, 8), number(run.hopsPerSecond, 8),
                number(run.microsPerHop, 7), number(run.workerCPUMicrosPerHop, 11), number(run.sinkCPUMicrosPerHop, 5),
                number(run.brokerCPUMicrosPerHop, 7), number(run.workerPeakRSSMB, 7, 1), number(run.workerPrivateMB, 8, 1),
                number(run.endToEnd?.p50, 6, 1), number(run.endToEnd?.p95, 6, 1), number(run.endToEnd?.p99, 6, 1),
            ].joined(separator: " "))
        if run.notEndedAsExpected > 0 {
            Swift.print("  warning: \(run.notEndedAsExpected) slips did not end completed")
        }
        fflush(nil)  // each row as it comes, even into a pipe
    }

    /// The issue's targets, each with its figure from this run (nil when the run did not measure it).
    mutating func printSummary() {
        func find(_ system: String, _ mode: String, hops: Int, rate: Double? = nil) -> BenchRun? {
            runs.last {
                $0.chain.hasPrefix(system) && $0.mode == mode && $0.hops == hops && (rate == nil || $0.rate == rate)
            }
        }
        func ratio(_ a: Double?, _ b: Double?) -> Double? {
            guard let a, let b, b > 0 else { return nil }
            return (a / b * 100).rounded() / 100
        }
        let slipway5 = find("slipway", "throughput", hops: 5) ?? find("slipway", "scaling", hops: 5)
        let bare5 = find("bare", "throughput", hops: 5) ?? find("bare", "scaling", hops: 5)
        let throughputRatio = ratio(slipway5?.hopsPerSecond, bare5?.hopsPerSecond)
        let bareLatency = find("bare", "latency", hops: 5, rate: 200)?.endToEnd
        let p99Ratio = ratio(find("slipway", "latency", hops: 5, rate: 200)?.endToEnd?.p99, bareLatency?.p99)
        // One run's p99 is a handful of slips: a single stall of the forwarder decides it.
        let bareStalled = bareLatency.flatMap { $0.p99 > 2 * $0.p95 ? $0 : nil }.map {
            String(format: "the forwarder's p99 (%.1f ms) is over twice its p95 (%.1f ms): a stall; run again", $0.p99, $0.p95)
        }
        let perHop2 = (find("slipway", "scaling", hops: 2) ?? find("slipway", "throughput", hops: 2))?.microsPerHop
        let perHop25 = (find("slipway", "scaling", hops: 25) ?? find("slipway", "throughput", hops: 25))?.microsPerHop
        let scalingRatio = ratio(perHop25, perHop2)
        let peakRSS = runs.filter { $0.chain.hasPrefix("slipway") }.map(\.workerPeakRSSMB).max()
        let privateMemory = runs.filter { $0.chain.hasPrefix("slipway") }.map(\.workerPrivateMB).max()
        targets = [
            Target(name: "chain-5 hops/s, slipway ÷ bare forwarder", value: throughputRatio, goal: "≥ 0.6", met: throughputRatio.map { $0 >= 0.6 }),
            Target(
                name: "chain-5 end-to-end p99 at 200 slips/s, slipway ÷ bare forwarder", value: p99Ratio, goal: "≤ 2",
                met: p99Ratio.map { $0 <= 2 }, caveat: bareStalled),
            Target(name: "time per hop, chain-25 ÷ chain-2", value: scalingRatio, goal: "≤ 1.5", met: scalingRatio.map { $0 <= 1.5 }),
            Target(name: "peak resident memory of one processor, MB", value: peakRSS, goal: "< 30", met: peakRSS.map { $0 < 30 }),
        ]
        let privateNote = privateMemory.map { String(format: "at most %.1f MB of a processor's resident memory is private; the rest is code and data shared with every process that maps the same libraries", $0) } ?? ""
        Swift.print("\ntargets")
        for target in targets {
            let value = target.value.map { String(format: "%.2f", $0) } ?? "not measured"
            let verdict = target.met.map { $0 ? "met" : "MISSED" } ?? ""
            Swift.print("  \(target.name.padding(toLength: 66, withPad: " ", startingAt: 0)) \(value.padding(toLength: 13, withPad: " ", startingAt: 0)) (\(target.goal)) \(verdict)")
            if let caveat = target.caveat { Swift.print("    but \(caveat)") }
        }
        if !slipBytesAtLastHop.isEmpty {
            let sizes = slipBytesAtLastHop.sorted { Int($0.key)! < Int($1.key)! }.map { "K=\($0.key): \($0.value) B" }
            Swift.print("  slip size at the last hop: \(sizes.joined(separator: ", "))")
        }
        Swift.print(
            "  machine: \(machine.cores) cores, \(machine.cpu), \(machine.memoryGB) GB; prefetch \(prefetch), concurrency \(concurrency), audit sink \(auditSink ? "on" : "off")"
                + (brokerPIDKnown ? "" : "; broker CPU not measured (--broker-pid-file)"))
        if !privateNote.isEmpty { Swift.print("  memory: \(privateNote)") }
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
