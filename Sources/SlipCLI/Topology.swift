import ArgumentParser
import Foundation
import Slipway
import SlipwayTemplates
import SlipwayOperations

/// `slip topology`: the RabbitMQ users and permissions that give each processor access to its own queues only.
struct TopologyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Print (or apply with --apply) RabbitMQ users and permissions: one user per step's processors, "
            + "one for the audit sink, one for producers, one for the operator's dlq commands.",
        discussion: """
            Users: <prefix>.step.<step> for each step's processors, <prefix>.audit-sink, <prefix>.producer and \
            <prefix>.operator. With --password-dir DIR, each user's password is in DIR/<user> (generated when \
            missing, mode 0600) and DIR/<user>.url holds the matching AMQP URL (for SLIPWAY_AMQP_URL_FILE). \
            Passwords reach rabbitmqctl on its standard input, never on a command line, and are never printed. \
            See docs/topology.md.

            Examples:
              slip topology --steps reserve-stock,charge-card,ship-order,notify-customer
              slip topology --template Slips/order-fulfillment.yaml --password-dir /etc/slipway/credentials --apply
            """)

    @Option(help: "Steps, comma-separated (repeatable).")
    var steps: [String] = []

    @Option(help: "A slip template whose steps to include (repeatable).")
    var template: [String] = []

    @Option(
        name: .customLong("queue-prefix"),
        help: "Prefix of queue and exchange names (default: $SLIPWAY_QUEUE_PREFIX, else slipway).")
    var queuePrefix: String?

    @Option(help: "The virtual host (it must exist).")
    var vhost = "/"

    @Option(
        name: .customLong("password-dir"),
        help: "Where the users' password files and URL files are; missing ones are generated (needed by --apply).")
    var passwordDir: String?

    @Flag(help: "Generate new passwords even for users whose password file exists.")
    var rotate = false

    @Option(
        name: .customLong("amqp-url"),
        help: """
            The broker the URL files point at: its host and port, or a cluster's nodes as URLs separated by commas \
            (default: $SLIPWAY_AMQP_URL, else 127.0.0.1:5672).
            """)
    var amqpURL: String?

    @Option(
        name: .customLong("queue-type"),
        help: "Type of the audit queue --apply declares: classic or quorum (default: $SLIPWAY_QUEUE_TYPE, else classic).")
    var queueType: String?

    func resolvedQueueType() throws -> QueueType {
        if let queueType { return try QueueType(parsing: queueType, from: "--queue-type") }
        return try QueueType.fromEnvironment(ProcessInfo.processInfo.environment)
    }

    @Flag(help: "Run the plan with rabbitmqctl: creates missing users, sets passwords and permissions (idempotent).")
    var apply = false

    @Option(help: "The RabbitMQ node for rabbitmqctl (default: $RABBITMQ_NODENAME, else rabbit@<short host name>).")
    var node: String?

    @Flag(help: "Print the plan as JSON (no passwords) instead of rabbitmqctl commands.")
    var json = false

    var topology: Topology {
        Topology(prefix: queuePrefix ?? ProcessInfo.processInfo.environment["SLIPWAY_QUEUE_PREFIX"] ?? "slipway")
    }

    var nodeName: String {
        if let node { return node }
        if let node = ProcessInfo.processInfo.environment["RABBITMQ_NODENAME"], !node.isEmpty { return node }
        let host = ProcessInfo.processInfo.hostName
        return "rabbit@\(host.split(separator: ".").first.map(String.init) ?? host)"
    }

    func validate() throws {
        guard Slip.isValidName(topology.prefix) else {
            throw ValidationError("the queue prefix must be 1 to 64 characters of A-Z a-z 0-9 _ -")
        }
        guard !vhost.isEmpty else { throw ValidationError("--vhost must not be empty") }
        if apply && passwordDir == nil {
            throw ValidationError("--apply needs --password-dir DIR: where the users' passwords are kept")
        }
        if steps.isEmpty && template.isEmpty { throw ValidationError("name the steps with --steps or --template") }
        do {
            _ = try resolvedQueueType()
        } catch {
            throw ValidationError("\(error)")
        }
        for step in steps.flatMap({ $0.split(separator: ",") }) where !Slip.isValidName(String(step)) {
            throw ValidationError("'\(step)' is not a valid step name (1 to 64 characters of A-Z a-z 0-9 _ -)")
        }
    }

    /// The steps of `--steps` and of the templates, each once, in the order first named.
    func allSteps() throws -> [String] {
        var names = steps.flatMap { $0.split(separator: ",").map(String.init) }
        for path in template { names += try SlipTemplate.load(path: path).itinerary.map(\.step) }
        var seen: Set<String> = []
        return names.filter { seen.insert($0).inserted }
    }

    func run() async throws {
        let plan: AccessPlan
        do {
            plan = AccessPlan(topology: topology, steps: try allSteps(), vhost: vhost)
        } catch {
            printError("\(error)")
            throw ExitCodes.badInput
        }
        var files: PasswordFiles?
        if let passwordDir {
            do {
                let store = PasswordFiles(directory: passwordDir, brokers: try brokerAddresses(), vhost: vhost)
                try store.prepare(plan.users.map(\.name), rotate: rotate)
                files = store
            } catch {
                printError("\(error)")
                throw ExitCodes.badInput
            }
        }
        if apply, let files {
            do {
                try await Rabbitmqctl(node: nodeName).apply(plan, passwords: files) { user, created in
                    print("\(created ? "created" : "updated") \(user)")
                }
            } catch {
                printError("\(error)")
                throw ExitCodes.unavailable
            }
            print("\(plan.users.count) users ready in vhost '\(vhost)' on \(nodeName); credentials in \(files.directory)")
            do {
                try await plan.declareAuditQueue(credentials: files, queueType: try resolvedQueueType())
            } catch {
                printError(
                    "cannot declare \(topology.auditQueue) at \(files.brokers.map(\.description).joined(separator: ",")) (--amqp-url): "
                        + "\(error); the audit sink and the processors declare it when they start")
                throw ExitCodes.unavailable
            }
            print("declared \(topology.auditQueue), bound to every event of \(topology.eventsExchange)")
        } else if json {
            printJSON(plan.described(node: nodeName, files: files))
        } else {
            print(plan.script(node: nodeName, passwordDir: files?.directory), terminator: "")
        }
    }

    /// The nodes `--amqp-url` names (else `$SLIPWAY_AMQP_URL`, else the local default), for the URL files.
    func brokerAddresses() throws -> [BrokerAddress] {
        let urls = amqpURL ?? ProcessInfo.processInfo.environment["SLIPWAY_AMQP_URL"] ?? AMQPConfiguration.defaultURL
        do {
            return try BrokerAddress.list(urls)
        } catch {
            throw ValidationError("--amqp-url: \(error)")
        }
    }
}
