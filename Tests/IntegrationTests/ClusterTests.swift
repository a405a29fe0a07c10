import ExampleLedger
import Foundation
import Logging
import Slipway
import SlipwayProcesses
import Testing

/// A 3-node RabbitMQ cluster (scripts/cluster.sh) shared by the cluster tests: started by the first test that needs
/// it (a minute or two), stopped when the test process exits. Its nodes are on `SLIPWAY_CLUSTER_PORT` (5770) and the
/// two ports after it.
enum TestCluster {
    static let basePort = Int(ProcessInfo.processInfo.environment["SLIPWAY_CLUSTER_PORT"] ?? "") ?? 5770
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/cluster.sh").path

    /// The nodes' URLs, node 1 first.
    static var urls: String {
        (0..<3).map { "amqp://guest:guest@127.0.0.1:\(basePort + $0)/" }.joined(separator: ",")
    }

    private static let started = Task<Void, any Error> {
        try await offThePool { try run("start") }
        atexit { try? TestCluster.run("stop") }
    }

    /// Starts the cluster once per test process; later calls wait for that start.
    static func start() async throws { try await started.value }

    static func kill(node: Int) async throws { try await offThePool { try run("kill-node", String(node)) } }
    static func restart(node: Int) async throws { try await offThePool { try run("restart-node", String(node)) } }

    /// Blocking; the script's output goes to the test run's.
    private static func run(_ arguments: String...) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["SLIPWAY_CLUSTER_PORT"] = String(basePort)
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn("/bin/bash", arguments: [script] + arguments, environment: environment, output: .inherit)
        } catch {
            throw HarnessError("cannot run scripts/cluster.sh")
        }
        guard child.waitBlocking() == .exited(0) else {
            throw HarnessError("scripts/cluster.sh \(arguments.joined(separator: " ")) failed (cluster on port \(basePort))")
        }
    }

    /// What every process of a cluster test gets: the node list, node 1 first and tried first, and quorum queues.
    static let environment = [
        "SLIPWAY_QUEUE_TYPE": "quorum", "SLIPWAY_AMQP_NODE_ORDER": "listed", "SLIPWAY_LOG_LEVEL": "info",
    ]

    /// A transport of the test's own on the cluster (node 1 first), declaring `queueType` queues.
    static func transport(queueType: QueueType = .quorum) throws -> AMQPTransport {
        var configuration = try AMQPConfiguration(url: urls, environment: ["SLIPWAY_AMQP_NODE_ORDER": "listed"])
        configuration.queueType = queueType
        configuration.publishDeadline = .seconds(120)  // through a node's loss and the queues' leader elections
        var logger = Logger(label: "test.cluster")
        logger.logLevel = .warning
        return AMQPTransport(configuration: configuration, logger: logger)
    }
}

/// Processors on a 3-node RabbitMQ cluster with quorum queues. Slow (the cluster takes a minute or two to start) and
/// needs root (the nodes run as user rabbitmq): runs only with SLIPWAY_CLUSTER_TESTS=1.
@Suite(
    "RabbitMQ cluster", .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["SLIPWAY_CLUSTER_TESTS"] == "1", "set SLIPWAY_CLUSTER_TESTS=1"))
struct ClusterTests {
    static func fleet(_ name: String, extra: [String: [String: String]] = [:]) throws -> SagaFleet {
        let names = SagaFleet.steps + ["a", "b", "c", "audit-sink", "slip"]
        let environment = Dictionary(uniqueKeysWithValues: names.map { name in
            (name, TestCluster.environment.merging(extra[name] ?? [:]) { _, new in new })
        })
        return try SagaFleet(name: name, amqpURL: TestCluster.urls, environment: environment)
    }

    @Test("node 1 killed while 200 slips flow: processors move to other nodes, and every slip ends once, each step run once")
    func nodeLossLosesNothing() async throws {
        try await TestCluster.start()
        let fleet = try Self.fleet("cluster-kill", extra: ["charge-card": ["SLIPWAY_EXAMPLE_DELAY_MS": "200"]])
        try fleet.startAll()
        defer { fleet.stopAll() }
        let transport = try TestCluster.transport()
        defer { Task { await transport.shutdown() } }
        let sender = SlipSender(transport: transport, topology: fleet.topology)
        let slips = try (1...200).map { try Producer.template.makeSlip(values: ["orderId": .string("C-\($0)")]) }
        for slip in slips { try await sender.send(slip) }

        // Once the saga is under way, node 1 (every process's first node, so the one they are all connected to) dies.
        let under = ContinuousClock.now.advanced(by: .seconds(120))
        while try await fleet.finished(slips).count < 10 && ContinuousClock.now < under {
            try await Task.sleep(for: .milliseconds(100))
        }
        try await TestCluster.kill(node: 1)
        let finishedAtKill = try await fleet.finished(slips).count
        #expect(finishedAtKill < slips.count, "the node's loss must catch slips in flight")

        try await fleet.expectEverySlipRanEachStepOnce(slips, timeout: .seconds(300))
        // The processors did lose their node, and carried on from another one.
        for step in SagaFleet.steps {
            let log = fleet.log(step)
            #expect(log.contains("connection lost"), "\(step) never lost its connection:\n\(log.suffix(2000))")
            #expect(
                log.contains("amqp.node=127.0.0.1:\(TestCluster.basePort + 1)"), "\(step) did not move to node 2:\n\(log.suffix(2000))")
        }
        try await TestCluster.restart(node: 1)
    }

    @Test("a retry with backoff waits in a quorum delay queue and runs again on the cluster")
    func quorumDelayQueue() async throws {
        try await TestCluster.start()
        let fleet = try Self.fleet("cluster-delay")
        for step in ["a", "b", "c"] { try fleet.startProbe(step) }
        defer { fleet.stopAll() }
        let transport = try TestCluster.transport()
        defer { Task { await transport.shutdown() } }
        var slip = Slip(
            template: "probe",
            itinerary: ["a", "b", "c"].map { ItineraryStep(step: $0, arguments: $0 == "b" ? ["throwTimes": 2] : [:]) })
        slip.itinerary[1].retry = RetryPolicy(maxAttempts: 3, initialDelayMs: 300, multiplier: 2, maxDelayMs: 5_000, jitter: 0)
        let follower = try await SlipEventFollower.terminalEvents(of: [slip.id], transport: transport, topology: fleet.topology)
        defer { follower.stop() }
        try await SlipSender(transport: transport, topology: fleet.topology).send(slip)

        let event = try #require(await follower.next(timeout: .seconds(120)), "the slip did not end")
        #expect(event.state == .completed)
        #expect((event.log ?? []).filter { $0.step == "b" }.map(\.attempt) == [1, 2, 3])
    }

    @Test("a queue that exists with the other type is refused with a message that says so")
    func queueTypeMismatch() async throws {
        try await TestCluster.start()
        let topology = Topology(prefix: "tcluster-mismatch-\(UUID().uuidString.prefix(8).lowercased())")
        let quorum = try TestCluster.transport(queueType: .quorum)
        let classic = try TestCluster.transport(queueType: .classic)
        defer {
            Task {
                await quorum.shutdown()
                await classic.shutdown()
            }
        }
        try await quorum.declareQueue(topology.executeQueue(step: "q"))
        try await classic.declareQueue(topology.executeQueue(step: "c"))
        // The delay queue's quorum arguments (TTL, at-least-once dead-lettering) are accepted, and declared again alike.
        let delay = topology.delayQueue(for: topology.executeQueue(step: "q"), delayMs: 500)
        try await quorum.declareQueue(delay, arguments: .delay(500, thenTo: topology.executeQueue(step: "q")))
        try await quorum.declareQueue(delay, arguments: .delay(500, thenTo: topology.executeQueue(step: "q")))

        func refusal(_ transport: AMQPTransport, _ queue: String) async -> String {
            do {
                try await transport.declareQueue(queue)
                return "declared"
            } catch {
                return "\(error)"
            }
        }
        let q = topology.executeQueue(step: "q")
        let c = topology.executeQueue(step: "c")
        let asClassic = await refusal(classic, q)
        #expect(asClassic.contains("queue '\(q)' exists as a quorum queue; this client declares classic queues"), "\(asClassic)")
        let asQuorum = await refusal(quorum, c)
        #expect(asQuorum.contains("queue '\(c)' exists as a classic queue; this client declares quorum queues"), "\(asQuorum)")
    }
}
