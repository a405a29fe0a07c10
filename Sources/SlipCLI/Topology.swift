import ArgumentParser
import Foundation
import Slipway
import SlipwayTemplates
import Synchronization

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
                let store = PasswordFiles(directory: passwordDir, brokers: try BrokerAddress.list(url: amqpURL), vhost: vhost)
                try store.prepare(plan.users.map(\.name), rotate: rotate)
                files = store
            } catch {
                printError("\(error)")
                throw ExitCodes.badInput
            }
        }
        if apply, let files {
            do {
                try Rabbitmqctl(node: nodeName).apply(plan, passwords: files)
            } catch {
                printError("\(error)")
                throw ExitCodes.unavailable
            }
            print("\(plan.users.count) users ready in vhost '\(vhost)' on \(nodeName); credentials in \(files.directory)")
            do {
                try await declareAuditQueue(plan, files: files)
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
}

extension TopologyCommand {
    /// Declares the audit queue and its binding, as the audit sink's new user, over AMQP (rabbitmqctl cannot declare
    /// queues): events published before the sink's first start are then kept, not dropped.
    func declareAuditQueue(_ plan: AccessPlan, files: PasswordFiles) async throws {
        let user = "\(topology.prefix).audit-sink"
        var configuration = try AMQPConfiguration(url: files.url(user: user, password: try files.password(of: user)))
        configuration.publishDeadline = .seconds(15)
        configuration.queueType = try resolvedQueueType()
        let transport = AMQPTransport(configuration: configuration)
        do {
            try await transport.declareAuditQueue(topology)
        } catch {
            await transport.shutdown()
            throw error
        }
        await transport.shutdown()
    }
}

// MARK: - The plan

/// Who gets which permissions: the users and their three regular expressions. No passwords.
struct AccessPlan {
    struct User {
        var name: String
        var role: String
        var step: String?
        var permissions: BrokerPermissions
    }

    var topology: Topology
    var vhost: String
    var users: [User]

    init(topology: Topology, steps: [String], vhost: String) {
        self.topology = topology
        self.vhost = vhost
        let prefix = topology.prefix
        users =
            steps.map {
                User(
                    name: "\(prefix).step.\($0)", role: "processor", step: $0,
                    permissions: topology.processorPermissions(step: $0))
            } + [
                User(name: "\(prefix).audit-sink", role: "audit-sink", permissions: topology.auditSinkPermissions),
                User(name: "\(prefix).producer", role: "producer", permissions: topology.producerPermissions),
                User(name: "\(prefix).operator", role: "operator", permissions: topology.operatorPermissions),
            ]
    }

    /// The plan as shell commands: what `--apply` runs. Without a password directory, the commands read the files
    /// from `$PASSWORD_DIR`.
    func script(node: String, passwordDir: String?) -> String {
        let ctl = "rabbitmqctl -n \(shellQuoted(node))"
        let dir = passwordDir.map(shellQuoted) ?? "\"$PASSWORD_DIR\""
        var lines = [
            "# RabbitMQ users for Slipway queue prefix '\(topology.prefix)' in vhost '\(vhost)' (slip topology).",
            "# Each step's processors read only their own step's queues; see docs/topology.md for every permission.",
            "# Passwords are read from files (one per user, named after it), never put on a command line.",
        ]
        if passwordDir == nil {
            lines.append(
                ": \"${PASSWORD_DIR:?set PASSWORD_DIR to a directory of password files, or use --password-dir}\"")
        }
        for user in users {
            lines.append("")
            lines.append("# \(user.step.map { "processors of step '\($0)'" } ?? user.role)")
            let name = shellQuoted(user.name)
            let file = "\(dir)/\(name)"
            lines.append("\(ctl) add_user \(name) < \(file) || \(ctl) change_password \(name) < \(file)")
            let regexes = [user.permissions.configure, user.permissions.write, user.permissions.read]
            lines.append(
                "\(ctl) set_permissions -p \(shellQuoted(vhost)) \(name) \(regexes.map(shellQuoted).joined(separator: " "))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    struct Described: Encodable {
        struct User: Encodable {
            var name: String
            var role: String
            var step: String?
            var permissions: BrokerPermissions
            var passwordFile: String?
            var urlFile: String?
        }
        var queuePrefix: String
        var vhost: String
        var node: String
        var users: [User]
    }

    func described(node: String, files: PasswordFiles?) -> Described {
        Described(
            queuePrefix: topology.prefix, vhost: vhost, node: node,
            users: users.map {
                .init(
                    name: $0.name, role: $0.role, step: $0.step, permissions: $0.permissions,
                    passwordFile: files?.passwordPath($0.name), urlFile: files?.urlPath($0.name))
            })
    }
}

/// `text` as one word for a POSIX shell.
func shellQuoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
}

// MARK: - Password files

/// Where the URL files send clients: host and port only (a user, password or vhost in the URL is ignored).
struct BrokerAddress: CustomStringConvertible {
    var host: String
    var port: Int

    /// Every node of a URL list (a cluster), in order.
    static func list(url: String?) throws -> [BrokerAddress] {
        let text = url ?? ProcessInfo.processInfo.environment["SLIPWAY_AMQP_URL"] ?? AMQPConfiguration.defaultURL
        let addresses: [String]
        do {
            addresses = try AMQPConfiguration.split(text)
        } catch {
            throw ValidationError("--amqp-url: \(error)")
        }
        return try addresses.map { try BrokerAddress(url: $0) }
    }

    var description: String { "\(host):\(port)" }

    init(url: String?) throws {
        let text = url ?? ProcessInfo.processInfo.environment["SLIPWAY_AMQP_URL"] ?? AMQPConfiguration.defaultURL
        guard let components = URLComponents(string: text), components.scheme == "amqp" else {
            throw ValidationError("--amqp-url: not an AMQP URL (amqp://host:port/)")
        }
        let host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        self.host = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        port = components.port ?? 5672
    }
}

/// One password file per user (`DIR/<user>`) and the URL that goes with it (`DIR/<user>.url`), both readable by
/// their owner only. A password that exists is kept (so running processors keep working) unless rotated.
struct PasswordFiles {
    let directory: String
    /// A cluster's nodes, or the one broker.
    let brokers: [BrokerAddress]
    let vhost: String

    func passwordPath(_ user: String) -> String { "\(directory)/\(user)" }
    func urlPath(_ user: String) -> String { "\(directory)/\(user).url" }

    /// Makes sure every user has a password file and a current URL file.
    func prepare(_ users: [String], rotate: Bool) throws {
        if !FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        for user in users {
            let password: String
            if !rotate && FileManager.default.fileExists(atPath: passwordPath(user)) {
                password = try self.password(of: user)
            } else {
                password = Self.newPassword()
                try Self.writePrivately(password, to: passwordPath(user))
            }
            try Self.writePrivately(url(user: user, password: password), to: urlPath(user))
        }
    }

    func password(of user: String) throws -> String {
        let text = try String(contentsOfFile: passwordPath(user), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ValidationError("\(passwordPath(user)) is empty") }
        return text
    }

    /// `amqp://user:password@host:port/vhost`; the default vhost `/` is the empty path. For a cluster, a URL per
    /// node, separated by commas.
    func url(user: String, password: String) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        func encoded(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text }
        let path = vhost == "/" ? "" : encoded(vhost)
        return brokers.map { "amqp://\(encoded(user)):\(encoded(password))@\($0.host):\($0.port)/\(path)" }
            .joined(separator: ",")
    }

    /// 32 letters and digits from the system's cryptographic generator: about 190 bits, and nothing a URL or a
    /// shell needs to escape.
    static func newPassword() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<32).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }

    /// Written to a new file created with mode 0600, then renamed over the old one: never readable by others, not
    /// even for a moment, and never half-written.
    static func writePrivately(_ text: String, to path: String) throws {
        let temporary = "\(path).tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0o600)
        guard descriptor >= 0 else {
            throw ValidationError("cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

// MARK: - Applying

/// Runs the plan's commands against a node: the same commands `slip topology` prints, with each password on
/// rabbitmqctl's standard input.
struct Rabbitmqctl {
    let node: String

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func apply(_ plan: AccessPlan, passwords: PasswordFiles) throws {
        let vhosts = try listJSON(["list_vhosts", "name"]).compactMap { $0["name"] }
        guard vhosts.contains(plan.vhost) else {
            throw Failure(
                description: "vhost '\(plan.vhost)' does not exist on \(node): create it first (rabbitmqctl add_vhost)")
        }
        let existing = Set(try listJSON(["list_users"]).compactMap { $0["user"] })
        for user in plan.users {
            let password = try passwords.password(of: user.name)
            if existing.contains(user.name) {
                try run(["change_password", user.name], input: password)
            } else {
                try run(["add_user", user.name], input: password)
            }
            let permissions = user.permissions
            try run([
                "set_permissions", "-p", plan.vhost, user.name, permissions.configure, permissions.write,
                permissions.read,
            ])
            print("\(existing.contains(user.name) ? "updated" : "created") \(user.name)")
        }
    }

    /// The string fields of each row of a `--formatter json` listing.
    private func listJSON(_ arguments: [String]) throws -> [[String: String]] {
        let output = try run(arguments + ["--formatter", "json"])
        guard let rows = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] else {
            throw Failure(description: "rabbitmqctl \(arguments[0]): unexpected output")
        }
        return rows.map { $0.compactMapValues { $0 as? String } }
    }

    /// Runs rabbitmqctl with `input` on its standard input; its standard output, or a failure with its errors.
    @discardableResult
    private func run(_ arguments: [String], input: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = try Self.executable()
        process.arguments = ["-n", node, "-q"] + arguments
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(Data((input ?? "").utf8))
        try stdin.fileHandleForWriting.close()
        // Both pipes drained at once: a child blocked on a full stderr would never finish its stdout.
        let errors = Mutex(Data())
        let errorsRead = DispatchSemaphore(value: 0)
        let errorHandle = stderr.fileHandleForReading
        Thread {
            errors.withLock { $0 = errorHandle.readDataToEndOfFile() }
            errorsRead.signal()
        }.start()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        errorsRead.wait()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.withLock { $0 }, as: UTF8.self)
                .split(separator: "\n").prefix(3).joined(separator: " ")
            throw Failure(
                description: "rabbitmqctl -n \(node) \(arguments[0]) \(arguments.count > 1 ? arguments[1] : "") failed "
                    + "(exit \(process.terminationStatus)): \(message)")
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func executable() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/sbin"] {
            let candidate = "\(directory)/rabbitmqctl"
            if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
        }
        throw Failure(
            description: "rabbitmqctl not found (install rabbitmq-server, or run the printed plan on the broker's host)"
        )
    }
}
