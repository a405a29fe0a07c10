import Foundation
import Slipway

/// Who gets which permissions on the broker: a user per step's processors, one for the audit sink, one for producers
/// and one for the operator's dlq commands, each with its three regular expressions. No passwords. What `slip
/// topology` prints, and applies through `Rabbitmqctl`.
public struct AccessPlan: Sendable {
    public struct User: Sendable {
        public var name: String
        public var role: String
        public var step: String?
        public var permissions: BrokerPermissions
    }

    public var topology: Topology
    public var vhost: String
    public var users: [User]

    public init(topology: Topology, steps: [String], vhost: String) {
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

    /// The audit sink's user, whose credentials declare the audit queue (`declareAuditQueue`).
    public var auditSinkUser: String { "\(topology.prefix).audit-sink" }

    /// The plan as shell commands: what `Rabbitmqctl.apply` runs. Without a password directory, the commands read the
    /// files from `$PASSWORD_DIR`.
    public func script(node: String, passwordDir: String?) -> String {
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

    /// The plan as `slip topology --json` prints it: the users, their permissions and where their files are.
    public struct Described: Encodable, Sendable {
        public struct User: Encodable, Sendable {
            public var name: String
            public var role: String
            public var step: String?
            public var permissions: BrokerPermissions
            public var passwordFile: String?
            public var urlFile: String?
        }
        public var queuePrefix: String
        public var vhost: String
        public var node: String
        public var users: [User]
    }

    public func described(node: String, files: PasswordFiles?) -> Described {
        Described(
            queuePrefix: topology.prefix, vhost: vhost, node: node,
            users: users.map {
                .init(
                    name: $0.name, role: $0.role, step: $0.step, permissions: $0.permissions,
                    passwordFile: files?.passwordPath($0.name), urlFile: files?.urlPath($0.name))
            })
    }

    /// Declares the audit queue and its binding, as the audit sink's user from `files`, over AMQP (rabbitmqctl cannot
    /// declare queues): events published before the sink's first start are then kept, not dropped.
    public func declareAuditQueue(credentials files: PasswordFiles, queueType: QueueType) async throws {
        let user = auditSinkUser
        var configuration = try AMQPConfiguration(url: files.url(user: user, password: try files.password(of: user)))
        configuration.publishDeadline = .seconds(15)
        configuration.queueType = queueType
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

/// `text` as one word for a POSIX shell.
func shellQuoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
}
