import ArgumentParser
import Foundation
import Slipway

/// `slipway-bench`: the chain-K benchmark. A tool of this repository, not a product: `swift build --product
/// slipway-bench` builds it, and `make bench` runs it on a release build (scripts/bench.sh).
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slipway-bench",
        abstract: "Measure the framework's cost per hop against a bare AMQP forwarder (the chain-K workload).",
        discussion: """
            Starts K probe-step processors (each its own process: hop record, hop events, confirms, acks) and the \
            audit sink, on queues of their own, and K bare forwarders over the same AMQP layer with the same delivery \
            guarantees but none of the slip logic. Modes: throughput (--slips sent as fast as the broker confirms, \
            timed from the first send to the last terminal event), latency (an open-loop fixed rate for --duration; \
            end-to-end p50/p95/p99 from HdrHistogram), scaling (throughput for each K of --scaling, and the slip's \
            size at its last hop). Needs the probe-step, bench-forwarder and slip (for the audit sink) executables \
            beside slipway-bench (or --bin-dir).

            Stores and queue types: each --store (sqlite, the default, or a postgres:// URL) and each --queue-type \
            (classic or quorum) adds the framework's chain in that configuration to every measurement, one after \
            the other against the same broker and beside the same bare forwarder run, whose queues are always \
            classic. For example:
              slipway-bench --store sqlite --store postgres://USER:PASSWORD@HOST:PORT/DB
              slipway-bench --amqp-url URL1,URL2,URL3 --queue-type quorum --queue-type classic

            --postgres-pid-file adds the PostgreSQL server's CPU time per hop (postmaster and backends), \
            --broker-pid-file the broker's (once per node of a cluster). Give PostgreSQL an empty database \
            (scripts/bench.sh starts a fresh server): each chain has queues of its own and new slip ids, so its \
            records never meet an earlier chain's, but they stay. See docs/performance.md.
            """)

    /// Exit status 3 when a chain cannot be run, as `slip` exits when the broker cannot be reached; 2 is bad usage.
    static let unavailable = ExitCode(3)

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

    @Option(name: .customLong("bin-dir"), help: "Where probe-step, bench-forwarder and slip are (default: beside slipway-bench).")
    var binDirectory: String?

    @Option(name: .customLong("state-dir"), help: "Hop records, audit database and logs (default: a new temp folder).")
    var stateDirectory: String?

    @Option(
        name: .customLong("store"),
        help: "The framework's hop record: sqlite (a file per processor), sqlite-inbox (the same, the probes writing a row a hop through the inbox), sqlite-keyed (the probes writing that row to a ledger of their own with the hop's idempotency key) or a postgres:// URL; repeat it to measure several in one run.")
    var stores: [String] = []

    @Option(
        name: .customLong("queue-type"),
        help: "classic or quorum queues for the framework's chain (default: $SLIPWAY_QUEUE_TYPE, else classic); repeat it to measure both in one run.")
    var queueTypes: [String] = []

    @Option(
        name: .customLong("amqp-url"),
        help: """
            RabbitMQ URL; a cluster's nodes as URLs separated by commas (default: $SLIPWAY_AMQP_URL or \
            $SLIPWAY_AMQP_URLS, else amqp://guest:guest@127.0.0.1:5672/)
            """)
    var amqpURL: String?

    @Option(
        name: .customLong("broker-pid-file"),
        help: "The broker's pid file, to report its CPU time per hop; once per node of a cluster, whose CPU times add up.")
    var brokerPIDFiles: [String] = []

    @Option(
        name: .customLong("postgres-pid-file"),
        help: "PostgreSQL's postmaster.pid, to report the server's CPU time per hop (postmaster and backends).")
    var postgresPIDFile: String?

    @Option(
        name: .customLong("c-limit"),
        help: "The bare C forwarder of shared/bench (a chain_limit binary you built): its chain runs too, in throughput mode, on the same broker, as the limit the others are measured against.")
    var cLimit: String?

    @Option(help: "Seconds a run may take before the benchmark gives up.")
    var timeout = 600.0

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    func run() async throws {
        let setup = try makeSetup()
        let rateList = rates.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let scalingList = try scaling.split(separator: ",").map { text in
            guard let k = Int(text.trimmingCharacters(in: .whitespaces)), (1...100).contains(k) else {
                throw ValidationError("--scaling takes chain lengths from 1 to 100, got '\(text)'")
            }
            return k
        }
        let servers: Servers
        do {
            servers = Servers(
                brokers: try brokerPIDFiles.map(pidFromFile), postgres: try postgresPIDFile.map(pidFromFile))
        } catch {
            throw ValidationError("\(error)")
        }
        var report = BenchReport(
            setup: setup, brokerPIDKnown: !servers.brokers.isEmpty, postgresPIDKnown: servers.postgres != nil)
        print("slipway-bench: logs and databases in \(setup.stateDirectory)")
        if setup.variants.count > 1 || setup.variants.contains(where: { $0.store != .sqlite || $0.queueType != .classic }) {
            for variant in setup.variants {
                print("slipway-bench: the framework's chain with \(variant.storeDescription), \(variant.queueType.rawValue) queues")
            }
        }

        if mode == .all || mode == .throughput || mode == .latency {
            // The latency mode needs the maximum only to offer half of it.
            var systems: [BenchRun] = []
            if mode != .latency || rateList.contains("half") {
                systems = try await measure(hops: hops, setup: setup, servers: servers) { runner, results in
                    try await runner.warmUp()
                    let maximum = try await runner.throughput(slips: slips)
                    results.append(maximum)
                    report.print(maximum)
                    return maximum
                }
                report.runs += systems
                if let cLimit {
                    let limit = try CLimitRun(
                        binary: cLimit, amqpURL: setup.amqpURL, directory: "\(setup.stateDirectory)/c-limit")
                    let run = try await limit.throughput(hops: hops, slips: slips, brokerPIDs: servers.brokers)
                    report.print(run)
                    report.runs.append(run)
                }
            }
            if mode != .throughput {
                // Every configuration at the same rates: half the slowest one's maximum, which overloads none.
                let slipwayMax = systems.filter { $0.store != nil }.map(\.slipsPerSecond).min() ?? 100
                let offered = try rateList.map { text -> Double in
                    if text == "half" { return max(1, (slipwayMax / 2).rounded()) }
                    guard let rate = Double(text), rate > 0 else {
                        throw ValidationError("--rates takes slips per second or 'half', got '\(text)'")
                    }
                    return rate
                }
                for rate in offered {
                    report.runs += try await measure(hops: hops, setup: setup, servers: servers) { runner, results in
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
                report.runs += try await measure(hops: k, setup: setup, servers: servers) { runner, results in
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
            print("slipway-bench: results written to \(json)")
        }
    }

    /// The servers whose CPU time the report shows.
    private struct Servers {
        var brokers: [pid_t]
        var postgres: pid_t?
    }

    /// Runs `body` on the bare forwarder chain (when --baseline) and then on the framework's in each configuration,
    /// each started fresh and stopped after, so one's leftovers never load the next.
    private func measure(
        hops: Int, setup: BenchSetup, servers: Servers,
        _ body: (BenchRunner, inout [BenchRun]) async throws -> BenchRun
    ) async throws -> [BenchRun] {
        var results: [BenchRun] = []
        var chains: [@Sendable () async throws -> any BenchChain] = []
        if baseline { chains.append { try await ForwarderChain(hops: hops, setup: setup) } }
        for variant in setup.variants {
            chains.append { try await SlipChain(hops: hops, setup: setup, variant: variant) }
        }
        for makeChain in chains {
            let chain = try await makeChain()
            do {
                let runner = BenchRunner(
                    chain: chain, brokerPIDs: servers.brokers, postgresPID: servers.postgres, timeout: .seconds(timeout))
                _ = try await body(runner, &results)
            } catch {
                progress(nil)
                printError("\(chain.label): \(error) (logs in \(setup.stateDirectory))")
                await chain.stop()
                throw Bench.unavailable
            }
            await chain.stop()
        }
        return results
    }

    private func makeSetup() throws -> BenchSetup {
        let url: String
        if let explicit = amqpURL {
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
        let variants: [BenchVariant]
        do {
            let types =
                queueTypes.isEmpty
                ? [try QueueType.fromEnvironment(ProcessInfo.processInfo.environment)]
                : try queueTypes.map { try QueueType(parsing: $0, from: "--queue-type") }
            variants = try types.flatMap { type in try (stores.isEmpty ? ["sqlite"] : stores).map { try BenchVariant(store: $0, queueType: type) } }
        } catch {
            throw ValidationError("\(error)")
        }
        // The report tells configurations apart by store kind and queue type.
        guard Set(variants.map { [$0.storeName, $0.queueType.rawValue] }).count == variants.count else {
            throw ValidationError("give each store kind (sqlite, one PostgreSQL URL) and each queue type once")
        }
        let state =
            stateDirectory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("slipway-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        return BenchSetup(
            amqpURL: url, binDirectory: binDirectory, stateDirectory: state, prefetch: prefetch,
            concurrency: concurrency, auditSink: auditSink, variants: variants)
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("slipway-bench: \(message)\n".utf8))
}
