import ArgumentParser
import Foundation
import Slipway

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the framework's cost per hop against a bare AMQP forwarder (the chain-K workload).",
        discussion: """
            Starts K probe-step processors (each its own process: hop record, hop events, confirms, acks) and the
            audit sink, on queues of their own, and K bare forwarders over the same AMQP layer with the same delivery
            guarantees but none of the slip logic. Modes: throughput (--slips sent as fast as the broker confirms,
            timed from the first send to the last terminal event), latency (an open-loop fixed rate for --duration;
            end-to-end p50/p95/p99 from HdrHistogram), scaling (throughput for each K of --scaling, and the slip's
            size at its last hop). Needs the probe-step and bench-forwarder executables beside `slip` (or --bin-dir).
            See docs/performance.md.
            """)

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case all, throughput, latency, scaling
    }

    @Option(help: "all, throughput, latency or scaling.")
    var mode: Mode = .all

    @Option(help: "Hops in the chain for the throughput and latency modes.")
    var hops = 5

    @Option(help: "Slips per throughput run.")
    var slips = 5_000

    @Option(help: "Open-loop rates in slips/s for the latency mode; 'half' is half the maximum, measured first with --slips.")
    var rates = "half,200"

    @Option(help: "Seconds each open-loop run lasts.")
    var duration = 10.0

    @Option(help: "The chain lengths of the scaling mode.")
    var scaling = "2,5,10,25"

    @Option(name: .customLong("scaling-slips"), help: "Slips per scaling run (default: --slips).")
    var scalingSlips: Int?

    @Flag(inversion: .prefixedNo, help: "Measure the bare forwarder too, in the same run.")
    var baseline = true

    @Flag(name: .customLong("audit-sink"), inversion: .prefixedNo, help: "Run the audit sink beside the chain.")
    var auditSink = true

    @Option(help: "Unacknowledged deliveries per queue for every process (the processors' default).")
    var prefetch = 32

    @Option(help: "Hops each process runs at once per queue (the processors' default).")
    var concurrency = 8

    @Option(name: .customLong("bin-dir"), help: "Where probe-step and bench-forwarder are (default: beside slip).")
    var binDirectory: String?

    @Option(name: .customLong("state-dir"), help: "Hop records, audit database and logs (default: a new temp folder).")
    var stateDirectory: String?

    @Option(name: .customLong("broker-pid-file"), help: "The broker's pid file, to report its CPU time per hop.")
    var brokerPIDFile: String?

    @Option(help: "Seconds a run may take before the benchmark gives up.")
    var timeout = 600.0

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @OptionGroup var broker: BrokerOptions

    func run() async throws {
        let setup = try makeSetup()
        let rateList = rates.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let scalingList = try scaling.split(separator: ",").map { text in
            guard let k = Int(text.trimmingCharacters(in: .whitespaces)), (1...100).contains(k) else {
                throw ValidationError("--scaling takes chain lengths from 1 to 100, got '\(text)'")
            }
            return k
        }
        let brokerPID = brokerPIDFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        var report = BenchReport(setup: setup, brokerPIDKnown: brokerPID != nil)
        print("slip bench: logs and databases in \(setup.stateDirectory)")

        if mode == .all || mode == .throughput || mode == .latency {
            // The latency mode needs the maximum only to offer half of it.
            var systems: [BenchRun] = []
            if mode != .latency || rateList.contains("half") {
                systems = try await measure(hops: hops, setup: setup, brokerPID: brokerPID) { runner, results in
                    try await runner.warmUp()
                    let maximum = try await runner.throughput(slips: slips)
                    results.append(maximum)
                    report.print(maximum)
                    return maximum
                }
                report.runs += systems
            }
            if mode != .throughput {
                let slipwayMax = systems.last?.slipsPerSecond ?? 100
                let offered = try rateList.map { text -> Double in
                    if text == "half" { return max(1, (slipwayMax / 2).rounded()) }
                    guard let rate = Double(text), rate > 0 else {
                        throw ValidationError("--rates takes slips per second or 'half', got '\(text)'")
                    }
                    return rate
                }
                for rate in offered {
                    report.runs += try await measure(hops: hops, setup: setup, brokerPID: brokerPID) { runner, results in
                        try await runner.warmUp()
                        let run = try await runner.latency(rate: rate, duration: .seconds(duration))
                        results.append(run)
                        report.print(run)
                        return run
                    }
                }
            }
        }
        if mode == .all || mode == .scaling {
            for k in scalingList {
                report.runs += try await measure(hops: k, setup: setup, brokerPID: brokerPID) { runner, results in
                    try await runner.warmUp()
                    var run = try await runner.throughput(slips: scalingSlips ?? slips)
                    run.mode = "scaling"
                    results.append(run)
                    report.print(run)
                    return run
                }
                report.slipBytesAtLastHop[String(k)] = try BenchReport.slipBytesAtLastHop(hops: k)
            }
        }
        report.printSummary()
        if let json {
            try report.json().write(to: URL(fileURLWithPath: json))
            print("slip bench: results written to \(json)")
        }
    }

    /// Runs `body` on the bare forwarder chain (when --baseline) and then on the framework's, each started fresh and
    /// stopped after, so one's leftovers never load the other.
    private func measure(
        hops: Int, setup: BenchSetup, brokerPID: pid_t?,
        _ body: (BenchRunner, inout [BenchRun]) async throws -> BenchRun
    ) async throws -> [BenchRun] {
        var results: [BenchRun] = []
        var chains: [@Sendable () async throws -> any BenchChain] = []
        if baseline { chains.append { try await ForwarderChain(hops: hops, setup: setup) } }
        chains.append { try await SlipChain(hops: hops, setup: setup) }
        for makeChain in chains {
            let chain = try await makeChain()
            do {
                _ = try await body(BenchRunner(chain: chain, brokerPID: brokerPID, timeout: .seconds(timeout)), &results)
            } catch {
                progress(nil)
                printError("\(chain.label): \(error) (logs in \(setup.stateDirectory))")
                await chain.stop()
                throw ExitCodes.unavailable
            }
            await chain.stop()
        }
        return results
    }

    private func makeSetup() throws -> BenchSetup {
        let url: String
        if let explicit = broker.amqpURL {
            url = explicit
        } else {
            url =
                try AMQPConfiguration.url(fromEnvironment: ProcessInfo.processInfo.environment) ?? AMQPConfiguration.defaultURL
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let binDirectory = binDirectory ?? executable.deletingLastPathComponent().path
        for tool in ["probe-step", "bench-forwarder", "slip"] where !FileManager.default.isExecutableFile(atPath: "\(binDirectory)/\(tool)") {
            throw ValidationError("\(binDirectory)/\(tool) is missing: build it (swift build) or give --bin-dir")
        }
        let state =
            stateDirectory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("slipway-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        return BenchSetup(
            amqpURL: url, binDirectory: binDirectory, stateDirectory: state, prefetch: prefetch,
            concurrency: concurrency, auditSink: auditSink)
    }
}
