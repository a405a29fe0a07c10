import ExampleLedger
import Foundation
import Logging
import Slipway
import SlipwayAMQP
import SlipwayProcesses
import SlipwayTemplates
import SlipwayTransport
import Testing

/// The RabbitMQ the tests use: `SLIPWAY_AMQP_URL`, which `make test` sets to a broker it starts for the run.
enum Broker {
    static var url: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["SLIPWAY_AMQP_URL"] else {
                throw HarnessError(
                    "SLIPWAY_AMQP_URL is not set: these tests need a real RabbitMQ; run them with `make test`")
            }
            return url
        }
    }

    static func transport(url: String? = nil) throws -> AMQPTransport {
        var logger = Logger(label: "test.amqp")
        logger.logLevel = .warning
        return AMQPTransport(configuration: try AMQPConfiguration(url: try url ?? Broker.url), logger: logger)
    }
}

/// A RabbitMQ node of a test's own (scripts/broker.sh), for tests that stop or restart the broker: the shared one
/// must stay up for the tests running beside them.
final class PrivateBroker: Sendable {
    let port: Int
    let url: String
    /// The node's amqps listener, if it has one (see TLSSupport.swift).
    let tls: BrokerTLS?
    private let script: String

    private init(port: Int, tls: BrokerTLS? = nil) {
        self.port = port
        self.tls = tls
        url = "amqp://guest:guest@127.0.0.1:\(port)/"
        script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/broker.sh").path
    }

    /// The first of the ports tests give their private nodes: `SLIPWAY_TEST_BROKER_PORT`, or 5690. Offset it to run two
    /// test runs side by side on one machine.
    static let basePort = Int(ProcessInfo.processInfo.environment["SLIPWAY_TEST_BROKER_PORT"] ?? "") ?? 5690

    /// A fresh node on `basePort + offset` (takes a few seconds).
    static func start(portOffset: Int = 0) async throws -> PrivateBroker {
        try await start(port: basePort + portOffset)
    }

    /// A fresh node on `port` (takes a few seconds).
    static func start(port: Int, tls: BrokerTLS? = nil) async throws -> PrivateBroker {
        let broker = PrivateBroker(port: port, tls: tls)
        try await offThePool { try broker.run("start", "--fresh") }
        return broker
    }

    /// The node's Erlang name, for `rabbitmqctl -n` (scripts/broker.sh names it after its port).
    var nodeName: String { "slipway\(port)@localhost" }

    /// Stops and starts the node, keeping its data (durable queues, persistent messages).
    func restart() async throws { try await offThePool { try self.run("restart") } }

    func stop() { try? run("stop") }

    /// Blocking; its output goes to the test run's. Not Foundation's Process: the script leaves the broker running as
    /// a daemon, and `Process.waitUntilExit()` was seen never to return in that case.
    private func run(_ arguments: String...) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["SLIPWAY_BROKER_PORT"] = String(port)
        environment["SLIPWAY_BROKER_DIR"] = "/tmp/slipway-test-broker-\(port)"
        if let tls { environment.merge(tls.brokerEnvironment) { _, new in new } }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(
                "/bin/bash", arguments: [script] + arguments, environment: environment, output: .inherit)
        } catch {
            throw HarnessError("cannot run scripts/broker.sh")
        }
        guard child.waitBlocking() == .exited(0) else {
            throw HarnessError("scripts/broker.sh \(arguments.joined(separator: " ")) failed on port \(port)")
        }
    }
}

/// Runs a command to its end; its exit status (128 + the signal if one ended it) and what it wrote to stdout and
/// stderr (both in `output` if `mergingErrors`). They go through files, not pipes: nothing to drain while it runs.
/// After `timeout`, SIGKILL.
func runToEnd(
    _ executable: String, _ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
    mergingErrors: Bool = false, timeout: Duration? = nil
) async throws -> (status: Int32, output: String, errors: String) {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-run-\(UUID().uuidString)").path
    let (outputPath, errorsPath) = ("\(base).out", "\(base).err")
    defer {
        try? FileManager.default.removeItem(atPath: outputPath)
        try? FileManager.default.removeItem(atPath: errorsPath)
    }
    let child = try ChildProcess.spawn(
        executable, arguments: arguments, environment: environment, output: .truncate(outputPath),
        errors: mergingErrors ? nil : .truncate(errorsPath))
    if let timeout, await child.exitStatus(within: timeout) == nil { child.send(SIGKILL) }
    let status = await child.exitStatus()
    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
    return (status.code, read(outputPath), mergingErrors ? "" : read(errorsPath))
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Where the built executables are: `SLIPWAY_BIN_DIR`, else this package's debug build folder.
enum Binaries {
    static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["SLIPWAY_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug")
    }

    static func path(_ name: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("no executable at \(path): build the package first (`swift build`), or set SLIPWAY_BIN_DIR")
        }
        return path
    }
}

/// The example saga's processors, each a separate OS process, on a queue prefix of their own so that tests running
/// at the same time on one broker never see each other's messages.
final class SagaFleet: @unchecked Sendable {
    // Safe: `processes` is only touched under `lock`.
    static let steps = ["reserve-stock", "charge-card", "ship-order", "notify-customer"]

    let prefix: String
    let directory: URL
    let ledger: Ledger
    let topology: Topology
    private let lock = NSLock()
    private var processes: [String: ChildProcess] = [:]
    private let extraEnvironment: [String: [String: String]]

    let amqpURL: String

    /// - Parameter environment: extra environment per step (e.g. a delay for one processor).
    init(name: String, amqpURL: String? = nil, environment: [String: [String: String]] = [:]) throws {
        self.amqpURL = try amqpURL ?? Broker.url
        prefix = "t\(name.prefix(20))-\(UUID().uuidString.prefix(8).lowercased())"
        topology = Topology(prefix: prefix)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-tests/\(prefix)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        ledger = try Ledger(path: directory.appendingPathComponent("ledger.sqlite").path)
        extraEnvironment = environment
    }

    func startAll() throws {
        for step in Self.steps { try start(step) }
    }

    /// The audit database the fleet's sink writes.
    var auditDB: String { directory.appendingPathComponent("audit.sqlite").path }

    /// `slip audit-sink` for this fleet's events, as a process named "audit-sink".
    func startSink() throws {
        try start("audit-sink", executable: "slip", arguments: ["audit-sink", "--db", auditDB, "--log-level", "warning"])
    }

    /// Runs `slip ARGUMENTS` against this fleet's broker, prefix and audit database; returns its exit status and output.
    func slip(_ arguments: [String]) async throws -> (status: Int32, output: String, errors: String) {
        try await runToEnd(try Binaries.path("slip"), arguments, environment: try environment(for: "slip"))
    }

    private func environment(for name: String) throws -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["SLIPWAY_AMQP_URL"] = amqpURL
        environment["SLIPWAY_QUEUE_PREFIX"] = prefix
        environment["SLIPWAY_STATE_DIR"] = directory.appendingPathComponent("state").path
        environment["SLIPWAY_EXAMPLE_LEDGER"] = ledger.path
        environment["SLIPWAY_AUDIT_DB"] = auditDB
        environment["SLIPWAY_LOG_LEVEL"] = "warning"
        environment.merge(extraEnvironment[name] ?? [:]) { _, new in new }
        return environment
    }

    func start(_ step: String) throws {
        try start(step, executable: step, arguments: [])
    }

    /// A `probe-step` process serving `step` (see Processors/probe-step).
    func startProbe(_ step: String) throws {
        try start(step, executable: "probe-step", arguments: ["--step", step])
    }

    /// Whether the process started as `name` is still running.
    func isRunning(_ name: String) -> Bool {
        lock.withLock { processes[name]?.isRunning ?? false }
    }

    func start(_ name: String, executable: String, arguments: [String]) throws {
        let child = try ChildProcess.spawn(
            try Binaries.path(executable), arguments: arguments, environment: try environment(for: name),
            output: .append(directory.appendingPathComponent("\(name).log").path))
        lock.withLock { processes[name] = child }
    }

    /// SIGKILL: no graceful anything, as when a machine or a container dies.
    func kill(_ step: String) async {
        guard let child = lock.withLock({ processes.removeValue(forKey: step) }) else { return }
        child.send(SIGKILL)
        _ = await child.exitStatus()
    }

    /// SIGTERM, then wait for the graceful exit (SIGKILL after 30 s); the exit status.
    func stop(_ step: String) async -> Int32? {
        guard let child = lock.withLock({ processes.removeValue(forKey: step) }) else { return nil }
        return await child.stop(grace: .seconds(30)).code
    }

    /// For `defer`: blocks, but only once a test is done.
    func stopAll() {
        let children = lock.withLock {
            defer { processes.removeAll() }
            return Array(processes.values)
        }
        for child in children { child.stopBlocking(grace: .seconds(30)) }
    }

    func log(_ step: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("\(step).log"), encoding: .utf8)) ?? ""
    }

    deinit {
        for child in processes.values { child.send(SIGTERM) }
    }
}

/// A producer on the fleet's queues, following terminal events.
struct Producer {
    let transport: AMQPTransport
    let sender: SlipSender
    let topology: Topology
    static let templatePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Slips/order-fulfillment.yaml").path
    static let template = try! SlipTemplate.parse(
        String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("Slips/order-fulfillment.yaml"),
            encoding: .utf8))

    init(fleet: SagaFleet) throws {
        transport = try Broker.transport(url: fleet.amqpURL)
        topology = fleet.topology
        sender = SlipSender(transport: transport, topology: fleet.topology)
    }

    func order(_ values: [String: JSONValue] = [:]) throws -> Slip {
        try Self.template.makeSlip(values: ["orderId": "T-1"].merging(values) { _, new in new })
    }

    func follow(_ slips: [Slip]) async throws -> SlipEventFollower {
        try await SlipEventFollower.terminalEvents(of: slips.map(\.id), transport: transport, topology: topology)
    }

    /// Sends and waits for the terminal events of all the slips; fails the test for any that does not end in time.
    func run(_ slips: [Slip], timeout: Duration = .seconds(60)) async throws -> [String: SlipEvent] {
        let follower = try await follow(slips)
        defer { follower.stop() }
        for slip in slips { try await sender.send(slip) }
        return try await collect(follower, count: slips.count, timeout: timeout)
    }

    /// Adds terminal events to `events` until it holds `total` different slips; counts repeated ones in `duplicates`.
    func collect(
        _ follower: SlipEventFollower, until total: Int, into events: inout [String: SlipEvent], duplicates: inout Int,
        timeout: Duration
    ) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while events.count < total {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero, let event = await follower.next(timeout: left) else {
                throw HarnessError("only \(events.count) of \(total) slips ended within \(timeout)")
            }
            if events[event.slipID] != nil { duplicates += 1 }
            events[event.slipID] = event
        }
    }

    func collect(_ follower: SlipEventFollower, count: Int, timeout: Duration) async throws -> [String: SlipEvent] {
        var events: [String: SlipEvent] = [:]
        var duplicates = 0
        try await collect(follower, until: count, into: &events, duplicates: &duplicates, timeout: timeout)
        return events
    }

    /// Reads `count` parked messages from the dead-letter queue (acking them), waiting up to `timeout` for them.
    func parked(count: Int, timeout: Duration = .seconds(30)) async throws -> [Delivery] {
        let stream = try await transport.consume(queue: topology.deadLetterQueue, prefetch: 100)
        let received = Received()
        let reader = Task {
            for try await delivery in stream {
                await delivery.ack()
                await received.append(delivery)
            }
        }
        defer {
            stream.stop()
            reader.cancel()
        }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while await received.count < count && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        return await received.all
    }

    private actor Received {
        var all: [Delivery] = []
        var count: Int { all.count }
        func append(_ delivery: Delivery) { all.append(delivery) }
    }
}
