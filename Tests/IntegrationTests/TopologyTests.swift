import Foundation
import Slipway
import SlipwayAudit
import SlipwayProcesses
import Testing

/// `slip topology`: one RabbitMQ user per step's processors (reading only their own queues), and one each for the
/// audit sink, producers and the operator.
@Suite("slip topology: RabbitMQ users and permissions")
struct TopologyTests {
    @Test("the plan anchors every permission, escapes the dots between names, and never shows a password")
    func printedPlan() async throws {
        let credentials = FileManager.default.temporaryDirectory
            .appendingPathComponent("slipway-tests/tplan-\(UUID().uuidString.prefix(8))/credentials").path
        let arguments = [
            "topology", "--steps", "pick,pack", "--queue-prefix", "tplan", "--password-dir", credentials,
            "--amqp-url", "amqp://someone:secret@10.0.0.5:5999/",
        ]
        let plan = try await Self.slip(arguments)
        #expect(plan.status == 0, "\(plan.errors)")

        let users = ["tplan.step.pick", "tplan.step.pack", "tplan.audit-sink", "tplan.producer", "tplan.operator"]
        var passwords: [String: String] = [:]
        for user in users {
            let password = try String(contentsOfFile: "\(credentials)/\(user)", encoding: .utf8)
            passwords[user] = password
            #expect(password.count == 32)
            #expect(!plan.output.contains(password) && !plan.errors.contains(password), "\(user)'s password was shown")
            #expect(try Self.mode(of: "\(credentials)/\(user)") == 0o600)
            #expect(try Self.mode(of: "\(credentials)/\(user).url") == 0o600)
            #expect(
                try String(contentsOfFile: "\(credentials)/\(user).url", encoding: .utf8)
                    == "amqp://\(user):\(password)@10.0.0.5:5999/")
            #expect(plan.output.contains("add_user '\(user)' < '\(credentials)'/'\(user)' || rabbitmqctl -n "))
        }
        let pickPermissions = [
            #"'^tplan\.(events|dead-letters|audit|[^.]+\.(execute|compensate)(\.delay-[0-9]+ms)?)$'"#,
            #"'^(amq\.default|tplan\.(events|audit))$'"#,
            #"'^tplan\.(events|pick\.(execute|compensate)(\.delay-[0-9]+ms)?|[^.]+\.execute\.delay-[0-9]+ms)$'"#,
        ]
        #expect(
            plan.output.contains("set_permissions -p '/' 'tplan.step.pick' \(pickPermissions.joined(separator: " "))"),
            "\(plan.output)")

        // The regular expressions against names, as RabbitMQ matches them.
        let described = try await Self.slip(arguments + ["--json"])
        #expect(described.status == 0, "\(described.errors)")
        let json = try JSONDecoder().decode(PlanJSON.self, from: Data(described.output.utf8))
        #expect(json.users.map(\.name) == users)
        for user in json.users {
            for regex in [user.permissions.configure, user.permissions.write, user.permissions.read] {
                #expect(regex.hasPrefix("^") && regex.hasSuffix("$"), "\(user.name): '\(regex)' is not anchored")
            }
        }
        let pick = try #require(json.users.first { $0.name == "tplan.step.pick" }).permissions
        for own in ["tplan.pick.execute", "tplan.pick.compensate", "tplan.pick.execute.delay-220ms"] {
            #expect(try Self.matches(pick.read, own), "pick cannot read \(own)")
        }
        // The delay queue in front of the next step: declaring it takes read (it dead-letters), see docs/topology.md.
        #expect(try Self.matches(pick.read, "tplan.pack.execute.delay-11ms"))
        for other in [
            "tplan.pack.execute", "tplan.pack.compensate", "tplan.pack.compensate.delay-11ms", "tplan.dead-letters",
            "tplan.audit", "tplanXpick.execute", "tplan.pickXexecute", "tplan2.pick.execute", "tplan.pick.execute2",
            "other.tplan.pick.execute",
        ] {
            #expect(try !Self.matches(pick.read, other), "pick can read \(other)")
        }
        #expect(try Self.matches(pick.write, "amq.default") && Self.matches(pick.write, "tplan.events"))
        #expect(try !Self.matches(pick.write, "amqXdefault") && !Self.matches(pick.write, "tplan.dead-letters"))
        // A processor declares the audit queue and binds it (so events sent before the sink's first start are kept):
        // configure and write on the queue, read on the events exchange; it still cannot consume the queue.
        #expect(try Self.matches(pick.configure, "tplan.audit") && Self.matches(pick.write, "tplan.audit"))
        #expect(try Self.matches(pick.read, "tplan.events"))
        let sink = try #require(json.users.first { $0.name == "tplan.audit-sink" }).permissions
        #expect(try Self.matches(sink.read, "tplan.audit") && !Self.matches(sink.read, "tplan.pick.execute"))
        let producer = try #require(json.users.first { $0.name == "tplan.producer" }).permissions
        #expect(
            try !Self.matches(producer.read, "tplan.pick.execute") && !Self.matches(producer.read, "tplan.dead-letters")
        )
        let dlq = try #require(json.users.first { $0.name == "tplan.operator" }).permissions
        #expect(try Self.matches(dlq.read, "tplan.dead-letters") && !Self.matches(dlq.read, "tplan.pick.execute"))

        // Again: the passwords stay (running processors keep working); with --rotate they change.
        #expect(try await Self.slip(arguments).status == 0)
        for user in users {
            #expect(try String(contentsOfFile: "\(credentials)/\(user)", encoding: .utf8) == passwords[user])
        }
        #expect(try await Self.slip(arguments + ["--rotate"]).status == 0)
        for user in users {
            #expect(try String(contentsOfFile: "\(credentials)/\(user)", encoding: .utf8) != passwords[user])
        }

        let refused = try await Self.slip(["topology", "--steps", "pick", "--apply"])
        #expect(refused.status != 0 && refused.errors.contains("--password-dir"))
    }

    @Test(
        """
        applied: a step's user consumes its own queue but not another's, and slips run end to end, each program \
        under its own user
        """)
    func appliedUsers() async throws {
        let broker = try await PrivateBroker.start(portOffset: 20)
        defer { broker.stop() }
        let prefix = "ttopo-\(UUID().uuidString.prefix(8).lowercased())"
        let topology = Topology(prefix: prefix)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-tests/\(prefix)").path
        let credentials = "\(directory)/credentials"
        let arguments = [
            "topology", "--steps", "first,second", "--queue-prefix", prefix, "--password-dir", credentials,
            "--amqp-url", broker.url, "--node", broker.nodeName, "--apply",
        ]
        let applied = try await Self.slip(arguments)
        try #require(applied.status == 0, "\(applied.errors)")
        let users = ["step.first", "step.second", "audit-sink", "producer", "operator"].map { "\(prefix).\($0)" }
        for user in users {
            let password = try String(contentsOfFile: "\(credentials)/\(user)", encoding: .utf8)
            #expect(!applied.output.contains(password) && !applied.errors.contains(password))
            #expect(applied.output.contains("created \(user)"))
        }
        // Applying again updates the existing users instead of failing.
        let again = try await Self.slip(arguments)
        #expect(again.status == 0, "\(again.errors)")
        #expect(again.output.contains("updated \(prefix).step.first"))
        func url(_ user: String) throws -> String {
            try String(contentsOfFile: "\(credentials)/\(prefix).\(user).url", encoding: .utf8)
        }

        // The first step's user: its own queue yes; the second step's and the dead letters, refused by the broker.
        let first = try Broker.transport(url: try url("step.first"))
        let own = try await first.consume(queue: topology.executeQueue(step: "first"), prefetch: 1)
        own.stop()
        for queue in [
            topology.executeQueue(step: "second"), topology.compensateQueue(step: "second"), topology.deadLetterQueue,
        ] {
            await #expect {
                _ = try await first.consume(queue: queue, prefetch: 1)
            } throws: { error in
                "\(error)".contains("ACCESS_REFUSED") && "\(error)".contains("'\(queue)'")
                    && "\(error)".contains("\(prefix).step.first")
            }
        }
        await first.shutdown()
        let producerTransport = try Broker.transport(url: try url("producer"))
        defer { Task { await producerTransport.shutdown() } }
        await #expect {
            _ = try await producerTransport.consume(queue: topology.executeQueue(step: "first"), prefetch: 1)
        } throws: { "\($0)".contains("ACCESS_REFUSED") }

        // `--apply` declared the audit queue and its binding (as the audit-sink user): an event published while
        // nothing is bound would be dropped by the broker, and a sink slow to start would miss the first hops.
        #expect(try await Self.queueBindings(node: broker.nodeName).contains("\(topology.eventsExchange) -> \(topology.auditQueue) #"))

        // The audit sink and two processors, each with its own URL; a producer with its own.
        let processes = Processes(directory: directory, prefix: prefix)
        defer { processes.stopAll() }
        try processes.start(
            "audit-sink", executable: "slip", arguments: ["audit-sink", "--db", "\(directory)/audit.sqlite"],
            url: try url("audit-sink"))
        try processes.start(
            "first", executable: "probe-step", arguments: ["--step", "first"], url: try url("step.first"))
        try processes.start(
            "second", executable: "probe-step", arguments: ["--step", "second"], url: try url("step.second"))

        let sender = SlipSender(transport: producerTransport, topology: topology)
        // A retry through the first step's own delay queue, then a wait in the delay queue before the second step.
        let completes = Slip(
            template: "topology-test",
            itinerary: [
                ItineraryStep(step: "first", arguments: ["throwTimes": 1, "waitMs": 300]),
                ItineraryStep(step: "second"),
            ])
        // The second step faults: its processor sends the slip to the first step's compensate queue.
        let compensates = Slip(
            template: "topology-test",
            itinerary: [ItineraryStep(step: "first"), ItineraryStep(step: "second", arguments: ["fault": "declined"])])
        let follower = try await SlipEventFollower.terminalEvents(
            of: [completes.id, compensates.id], transport: producerTransport, topology: topology)
        defer { follower.stop() }
        try await sender.send([completes, compensates])
        var ends: [String: SlipState] = [:]
        while ends.count < 2, let event = await follower.next(timeout: .seconds(60)) {
            ends[event.slipID] = event.state
        }
        #expect(ends[completes.id] == .completed, "logs:\n\(processes.logs)")
        #expect(ends[compensates.id] == .compensated, "logs:\n\(processes.logs)")

        // Everyone connected under their own user; nobody as guest.
        let connected = try await Self.connectedUsers(node: broker.nodeName)
        #expect(
            connected.isSuperset(
                of: ["step.first", "step.second", "audit-sink", "producer"].map { "\(prefix).\($0)" }),
            "\(connected)")
        #expect(!connected.contains("guest"), "\(connected)")

        // The audit sink, under its user, recorded both slips to their end: the completed one's retried attempt too.
        let store = try AuditStore.openForReading(path: "\(directory)/audit.sqlite")
        let timeline = try await Self.recorded(completes.id, in: store)
        #expect(timeline.hops.map { "\($0.step) \($0.outcome)" }.contains("first retried"))
        #expect(timeline.slip.state == .completed)
        #expect(try await Self.recorded(compensates.id, in: store).slip.state == .compensated)

        // The operator's user lists and replays what a processor parked; a processor's user cannot read the dead letters.
        try await sender.transport.publish([
            .toQueue(topology.executeQueue(step: "first"), body: Array("not a slip".utf8))
        ])
        let operatorURL = try url("operator")
        var parked: [String] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while parked.isEmpty && ContinuousClock.now < deadline {
            let listed = try await Self.slip([
                "dlq", "list", "--json", "--amqp-url", operatorURL, "--queue-prefix", prefix,
            ])
            try #require(listed.status == 0, "\(listed.errors)")
            parked = try JSONDecoder().decode([ParkedJSON].self, from: Data(listed.output.utf8)).map(\.reasonCode)
        }
        #expect(parked == ["malformed"])
        let replayed = try await Self.slip([
            "dlq", "replay", "--all", "--amqp-url", operatorURL, "--queue-prefix", prefix,
        ])
        #expect(replayed.status == 0, "\(replayed.errors)")
        #expect(replayed.output.contains("-> \(topology.executeQueue(step: "first"))"), "\(replayed.output)")
        let refused = try await Self.slip([
            "dlq", "list", "--amqp-url", try url("step.second"), "--queue-prefix", prefix,
        ])
        #expect(refused.status == 3 && refused.errors.contains("ACCESS_REFUSED"), "\(refused.errors)")
    }

    // MARK: - Helpers

    struct ParkedJSON: Decodable {
        var reasonCode: String
    }

    struct PlanJSON: Decodable {
        struct User: Decodable {
            var name: String
            var permissions: BrokerPermissions
        }
        var users: [User]
    }

    /// Whether RabbitMQ would grant `name` with this permission (it searches the name for the regular expression).
    static func matches(_ regex: String, _ name: String) throws -> Bool {
        try NSRegularExpression(pattern: regex).firstMatch(in: name, range: NSRange(name.startIndex..., in: name))
            != nil
    }

    static func mode(of path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? 0) & 0o777
    }

    /// Runs `slip ARGUMENTS`; its exit status and output.
    static func slip(_ arguments: [String]) async throws -> (status: Int32, output: String, errors: String) {
        try await runToEnd(try Binaries.path("slip"), arguments)
    }

    /// The users of the node's client connections.
    static func connectedUsers(node: String) async throws -> Set<String> {
        let result = try await runToEnd(
            "/usr/sbin/rabbitmqctl", ["-n", node, "-q", "list_connections", "user", "--formatter", "json"])
        try #require(result.status == 0, "\(result.errors)")
        let rows = try JSONDecoder().decode([[String: String]].self, from: Data(result.output.utf8))
        return Set(rows.compactMap { $0["user"] })
    }

    /// The node's bindings, as "exchange -> queue key".
    static func queueBindings(node: String) async throws -> [String] {
        let result = try await runToEnd(
            "/usr/sbin/rabbitmqctl",
            ["-n", node, "-q", "list_bindings", "source_name", "destination_name", "routing_key", "--formatter", "json"])
        try #require(result.status == 0, "\(result.errors)")
        let rows = try JSONDecoder().decode([[String: String]].self, from: Data(result.output.utf8))
        return rows.map { "\($0["source_name"] ?? "") -> \($0["destination_name"] ?? "") \($0["routing_key"] ?? "")" }
    }

    /// Polls the audit database until the sink has recorded the slip's end.
    static func recorded(_ slipID: String, in store: AuditStore, timeout: Duration = .seconds(30)) async throws
        -> AuditTimeline
    {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let timeline = try? store.show(slipID: slipID), timeline.slip.terminal { return timeline }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError("the audit sink did not record the end of slip \(slipID) within \(timeout)")
    }
}

/// Processes started with an AMQP URL of their own, logging into the test's directory.
final class Processes: @unchecked Sendable {
    // Safe: `running` is only touched under `lock`.
    let directory: String
    let prefix: String
    private let lock = NSLock()
    private var running: [String: ChildProcess] = [:]

    init(directory: String, prefix: String) {
        self.directory = directory
        self.prefix = prefix
    }

    func start(_ name: String, executable: String, arguments: [String], url: String) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["SLIPWAY_AMQP_URL"] = url
        environment["SLIPWAY_QUEUE_PREFIX"] = prefix
        environment["SLIPWAY_STATE_DIR"] = "\(directory)/state"
        environment["SLIPWAY_LOG_LEVEL"] = "warning"
        let child = try ChildProcess.spawn(
            try Binaries.path(executable), arguments: arguments, environment: environment,
            output: .truncate("\(directory)/\(name).log"))
        lock.withLock { running[name] = child }
    }

    var logs: String {
        lock.withLock { Array(running.keys) }.sorted().map { name in
            "--- \(name)\n" + ((try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? "")
        }.joined(separator: "\n")
    }

    /// SIGTERM to each, then wait for it: for `defer`, once the test is done.
    func stopAll() {
        for child in lock.withLock({ Array(running.values) }) { child.stopBlocking(grace: .seconds(30)) }
    }
}
