import ArgumentParser
import Foundation
import Slipway
import SlipwayTemplates

/// The chaos run (issue 5): the example saga under SIGKILLs and RabbitMQ restarts, then checks of what it kept.
@main
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slipway-chaos",
        abstract: "Run the example saga under SIGKILLs and RabbitMQ restarts, then check that nothing was lost, "
            + "doubled or left out of the audit trail.",
        discussion: """
            Starts the four example processors, the audit sink and the example order API as processes on a queue \
            prefix of their own, sends the slips (about 70 % complete; the rest fail at one of the four steps and \
            walk back; one in ten goes in as an order through the order API's outbox), SIGKILLs random processes at \
            random moments and starts them again (the order API also inside an order's transaction and right after \
            a commit), and restarts RabbitMQ (scripts/broker.sh restart, on the node of $SLIPWAY_BROKER_PORT). Then \
            it waits for every slip to end and checks the audit trail, the processors' hop records, the example \
            ledger, the stock that reserve-stock (an inbox step) keeps in its hop record's database, and the order \
            API's orders and outbox. See docs/chaos.md.

            Run it through `make chaos` (which starts a private RabbitMQ) or scripts/chaos.sh.

            Exit status: 0 every check passed; 1 a check failed; 3 the run could not be set up; 64 bad usage.
            """)

    @Option(help: "Slips to send.")
    var slips = 2_000

    @Option(help: "Seed of the run's choices: inputs, fault schedule, targets, pauses (default: random, printed).")
    var seed: UInt64?

    @Option(help: "Processes to SIGKILL over the run (default: slips / 50, at least 5).")
    var kills: Int?

    @Option(name: .customLong("broker-restarts"), help: "RabbitMQ restarts, spread over the run.")
    var brokerRestarts = 2

    @Option(help: "Processes per step (1 to 8), each consuming the step's queues.")
    var instances = 1

    @Flag(
        name: .customLong("shared-state"),
        help: "The instances of a step share one state directory, so one hop record (as processes on one host do); by default each has its own, as on hosts of their own.")
    var sharedState = false

    @Option(
        help: "A PostgreSQL hop record every instance of every step shares (postgres://USER:PASSWORD@HOST:PORT/DATABASE), as processors on several hosts do; the checks read this run's rows from it. Default: SQLite files in the instances' state directories.")
    var store: String?

    @Option(help: "Slips whose first hop message is sent twice on purpose, spread over the run.")
    var duplicates = 0

    @Option(
        name: .customLong("cluster-nodes"),
        help: "RabbitMQ is a cluster of this many nodes (scripts/cluster.sh, on $SLIPWAY_CLUSTER_PORT): a broker fault SIGKILLs one node and starts it again, one at a time in turn, instead of restarting RabbitMQ. Pass the nodes' URL list as --amqp-url.")
    var clusterNodes: Int?

    @Option(
        name: .customLong("broker-restart-command"),
        help: "Shell command that restarts RabbitMQ keeping its data (default: scripts/broker.sh restart).")
    var brokerRestartCommand: String?

    @Option(name: .customLong("bin-dir"), help: "Where the built executables are (default: beside this one).")
    var binDirectory: String?

    @Option(
        name: .customLong("state-dir"),
        help: "Where the run keeps its databases and logs; emptied first if an earlier run left it.")
    var stateDirectory = ".slipway/chaos"

    @Option(help: "Seconds the slips have to end, counted from the first sent; after that the checks run on what there is.")
    var timeout = 900

    @Option(help: "Also write the report as JSON to this file.")
    var json: String?

    @Option(help: "Slips in flight at most: sent and not yet ended (default: slips / 10, at least 100).")
    var window: Int?

    @Option(help: "Slips sent per second (default: slips / 30, between 5 and 20): the flow must last for the faults to land in it.")
    var rate: Double?

    @Option(
        name: .customLong("step-delay-ms"),
        help: "How long each example step takes, as a call to a real system would: half before its effect, half after (SLIPWAY_EXAMPLE_DELAY_MS, SLIPWAY_EXAMPLE_ANSWER_DELAY_MS), so that kills land in the middle of hops.")
    var stepDelayMs = 100

    @Option(help: "Share of the slips whose input makes a step fault, spread evenly over the four steps.")
    var compensating = 0.3

    @Option(help: "The saga's template.")
    var template = "Slips/order-fulfillment.yaml"

    @Option(name: .customLong("amqp-url"), help: "RabbitMQ URL (default: $SLIPWAY_AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/).")
    var amqpURL: String?

    @Flag(help: "Run only the checks again, on the files an earlier run left in --state-dir (e.g. after editing them).")
    var recheck = false

    func validate() throws {
        guard slips >= 1 else { throw ValidationError("--slips must be at least 1") }
        guard (kills ?? 0) >= 0 else { throw ValidationError("--kills must not be negative") }
        guard brokerRestarts >= 0 else { throw ValidationError("--broker-restarts must not be negative") }
        guard (1...8).contains(instances) else { throw ValidationError("--instances must be 1 to 8") }
        guard (clusterNodes ?? 3) >= 3 else { throw ValidationError("--cluster-nodes must be at least 3 (a majority survives one node's loss)") }
        guard (0...slips).contains(duplicates) else { throw ValidationError("--duplicates must be 0 to --slips") }
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        guard (window ?? 1) >= 1 else { throw ValidationError("--window must be at least 1") }
        guard (rate ?? 1) > 0 else { throw ValidationError("--rate must be positive") }
        if let store, !(store.hasPrefix("postgres://") || store.hasPrefix("postgresql://")) {
            throw ValidationError("--store takes a postgres:// URL (the default, SQLite files, needs no option)")
        }
        if store != nil && sharedState {
            throw ValidationError("--shared-state shares SQLite files; with --store every instance shares the PostgreSQL record already")
        }
        guard stepDelayMs >= 0 else { throw ValidationError("--step-delay-ms must not be negative") }
        guard (0...1).contains(compensating) else { throw ValidationError("--compensating must be between 0 and 1") }
    }

    func run() async throws {
        InterruptHandler.install()
        let files = RunFiles(root: stateDirectory)
        let report: ChaosReport
        do {
            if recheck {
                let (record, ends) = try RunRecord.load(from: files.root)
                report = try await ChaosRun.check(record, ends: ends, files: files)
            } else {
                report = try await ChaosRun(settings: try settings(files)).execute()
            }
        } catch {
            ChildRegistry.shared.killAll()
            FileHandle.standardError.write(Data("slipway-chaos: \(error)\n".utf8))
            throw ExitCode(3)
        }
        report.print()
        if let json { try report.write(json: json) }
        if !report.passed { throw ExitCode(1) }
    }

    private func settings(_ files: RunFiles) throws -> ChaosSettings {
        let environment = ProcessInfo.processInfo.environment
        let url = amqpURL ?? environment["SLIPWAY_AMQP_URL"] ?? AMQPConfiguration.defaultURL
        let amqp = try AMQPConfiguration(url: url)
        let bin = binDirectory ?? Self.ownDirectory()
        for name in ChaosRun.steps + ["slip", ProducerFeeder.name] where !FileManager.default.isExecutableFile(atPath: "\(bin)/\(name)") {
            throw ChaosError("no executable \(bin)/\(name): build the package first (swift build), or pass --bin-dir")
        }
        let broker =
            if let clusterNodes {
                try BrokerControl.clusterScript(nodes: clusterNodes, environment: environment, logPath: files.brokerLog)
            } else if let command = brokerRestartCommand {
                BrokerControl.shell(command, environment: environment, logPath: files.brokerLog)
            } else {
                try BrokerControl.brokerScript(amqp: amqp, environment: environment, logPath: files.brokerLog)
            }
        return ChaosSettings(
            slips: slips, seed: seed ?? UInt64.random(in: 0...UInt64(UInt32.max)), kills: kills ?? max(5, slips / 50),
            brokerRestarts: brokerRestarts, window: window ?? max(100, slips / 10), rate: rate ?? max(5, min(20, Double(slips) / 30)),
            stepDelayMs: stepDelayMs, compensating: compensating, templatePath: template,
            timeout: .seconds(timeout), binDirectory: bin, amqpURL: url, template: try SlipTemplate.load(path: template),
            files: files, broker: broker, instances: instances, sharedState: sharedState, duplicates: duplicates,
            hopStoreURL: store)
    }

    /// The directory of this executable, where `swift build` puts the processors and `slip` too.
    private static func ownDirectory() -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).deletingLastPathComponent().path
    }
}
