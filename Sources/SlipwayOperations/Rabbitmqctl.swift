import Foundation
import Synchronization

/// Runs the plan's commands against a node: the same commands `slip topology` prints, with each password on
/// rabbitmqctl's standard input.
public struct Rabbitmqctl: Sendable {
    public let node: String

    public init(node: String) {
        self.node = node
    }

    /// Creates the users that are missing, sets every user's password and permissions. Idempotent. `applied` is told
    /// of each user as it is done, whether it was created (else updated).
    public func apply(
        _ plan: AccessPlan, passwords: PasswordFiles, applied: (_ user: String, _ created: Bool) -> Void = { _, _ in }
    ) throws {
        let vhosts = try listJSON(["list_vhosts", "name"]).compactMap { $0["name"] }
        guard vhosts.contains(plan.vhost) else {
            throw OperationsError(
                .rabbitmqctl, "vhost '\(plan.vhost)' does not exist on \(node): create it first (rabbitmqctl add_vhost)")
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
            applied(user.name, !existing.contains(user.name))
        }
    }

    /// The string fields of each row of a `--formatter json` listing.
    private func listJSON(_ arguments: [String]) throws -> [[String: String]] {
        let output = try run(arguments + ["--formatter", "json"])
        guard let rows = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] else {
            throw OperationsError(.rabbitmqctl, "rabbitmqctl \(arguments[0]): unexpected output")
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
            throw OperationsError(
                .rabbitmqctl, "rabbitmqctl -n \(node) \(arguments[0]) \(arguments.count > 1 ? arguments[1] : "") failed "
                    + "(exit \(process.terminationStatus)): \(message)")
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// rabbitmqctl on the PATH, else in the sbin directories where packages put it.
    static func executable() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/sbin"] {
            let candidate = "\(directory)/rabbitmqctl"
            if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
        }
        throw OperationsError(
            .rabbitmqctl, "rabbitmqctl not found (install rabbitmq-server, or run the printed plan on the broker's host)"
        )
    }
}
