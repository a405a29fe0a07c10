import ExampleLedger
import Foundation
import Logging
import Slipway
import SlipwayAMQP
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

    /// posix_spawn and waitpid rather than Foundation's Process: the script leaves the broker running as a daemon,
    /// and `Process.waitUntilExit()` was seen never to return in that case.
    private func run(_ arguments: String...) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["SLIPWAY_BROKER_PORT"] = String(port)
        environment["SLIPWAY_BROKER_DIR"] = "/tmp/slipway-test-broker-\(port)"
        if let tls { environment.merge(tls.brokerEnvironment) { _, new in new } }
        let argv = ["/bin/bash", script] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var cArgv = argv.map { strdup($0) } + [nil]
        var cEnvp = envp.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnvp.forEach { free($0) }
        }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/bash", nil, nil, &cArgv, &cEnvp) == 0 else {
            throw HarnessError("cannot run scripts/broker.sh")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        guard status == 0 else {
            throw HarnessError("scripts/broker.sh \(arguments.joined(separator: " ")) failed on port \(port)")
        }
    }
}

/// Waits for a child to end and returns its exit status, without `Process.waitUntilExit()`: that was seen to spin
/// forever on a child that Foundation never reaped (a zombie), hanging the test run. Polls `isRunning` and reaps with
/// `waitpid` itself; after `timeout`, SIGKILL.
@discardableResult
func waitForExit(_ process: Process, timeout: Duration = .seconds(30)) -> Int32 {
    let pid = process.processIdentifier
    let deadline = ContinuousClock.now.advanced(by: timeout)
    var killed = false
    while true {
        if !process.isRunning { return process.terminationStatus }
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid { return (status >> 8) & 0xFF }
        // ECHILD: Foundation reaped it first; its status arrives when `isRunning` turns false, checked above.
        if !killed && ContinuousClock.now >= deadline {
            Foundation.kill(pid, SIGKILL)
            killed = true
        }
        if ContinuousClock.now >= deadline.advanced(by: .seconds(10)) { return -1 }
        usleep(20_000)
    }
}

/// Runs blocking work (waiting for a process, reading a pipe to its end) on a thread of its own: on Swift's cooperative
/// pool it would hold one of its few threads (two on this machine) and starve every other test in the process.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
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
    private var processes: [String: Process] = [:]
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
        try await offThePool { try self.slipBlocking(arguments) }
    }

    private func slipBlocking(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Binaries.path("slip"))
        process.arguments = arguments
        process.environment = try environment(for: "slip")
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        let status = waitForExit(process)
        return (status, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
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

    private func start(_ name: String, executable: String, arguments: [String]) throws {
        let step = name
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Binaries.path(executable))
        process.arguments = arguments
        process.environment = try environment(for: step)
        let log = directory.appendingPathComponent("\(step).log")
        if !FileManager.default.fileExists(atPath: log.path) {
            FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        lock.withLock { processes[step] = process }
    }

    /// SIGKILL: no graceful anything, as when a machine or a container dies.
    func kill(_ step: String) async {
        _ = try? await offThePool { self.killBlocking(step) }
    }

    private func killBlocking(_ step: String) {
        guard let process = lock.withLock({ processes.removeValue(forKey: step) }) else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        waitForExit(process)
    }

    /// SIGTERM, then wait for the graceful exit; the exit status.
    func stop(_ step: String) async -> Int32? {
        (try? await offThePool { self.stopBlocking(step) }) ?? nil
    }

    private func stopBlocking(_ step: String) -> Int32? {
        guard let process = lock.withLock({ processes.removeValue(forKey: step) }) else { return nil }
        process.terminate()
        return waitForExit(process)
    }

    /// For `defer`: blocks, but only once a test is done.
    func stopAll() {
        for name in lock.withLock({ Array(processes.keys) }) { _ = stopBlocking(name) }
    }

    func log(_ step: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("\(step).log"), encoding: .utf8)) ?? ""
    }

    deinit {
        for process in processes.values where process.isRunning { process.terminate() }
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
