import Foundation
import Subprocess

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
    ) async throws {
        let vhosts = try await listJSON(["list_vhosts", "name"]).compactMap { $0["name"] }
        guard vhosts.contains(plan.vhost) else {
            throw OperationsError(
                .rabbitmqctl, "vhost '\(plan.vhost)' does not exist on \(node): create it first (rabbitmqctl add_vhost)")
        }
        let existing = Set(try await listJSON(["list_users"]).compactMap { $0["user"] })
        for user in plan.users {
            let password = try passwords.password(of: user.name)
            if existing.contains(user.name) {
                try await run(["change_password", user.name], input: password)
            } else {
                try await run(["add_user", user.name], input: password)
            }
            let permissions = user.permissions
            try await run([
                "set_permissions", "-p", plan.vhost, user.name, permissions.configure, permissions.write,
                permissions.read,
            ])
            applied(user.name, !existing.contains(user.name))
        }
    }

    /// The string fields of each row of a `--formatter json` listing.
    private func listJSON(_ arguments: [String]) async throws -> [[String: String]] {
        let output = try await run(arguments + ["--formatter", "json"])
        guard let rows = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] else {
            throw OperationsError(.rabbitmqctl, "rabbitmqctl \(arguments[0]): unexpected output")
        }
        return rows.map { $0.compactMapValues { $0 as? String } }
    }

    /// Runs rabbitmqctl with `input` on its standard input; its standard output, or a failure with its errors.
    /// Subprocess feeds the input and drains both pipes at once (a child blocked on a full stderr would never finish
    /// its stdout), and waits for the exit without holding a thread.
    @discardableResult
    private func run(_ arguments: [String], input: String = "") async throws -> String {
        let executable = try Self.executable()
        // `.init`: a FilePath, from SystemPackage, which Subprocess imports for us.
        let result = try await Subprocess.run(
            .path(.init(executable)), arguments: Arguments(["-n", node, "-q"] + arguments),
            input: .string(input), output: .string(limit: Self.outputLimit), error: .string(limit: Self.errorLimit))
        guard result.terminationStatus.isSuccess else {
            let message = result.standardError.split(separator: "\n").prefix(3).joined(separator: " ")
            throw OperationsError(
                .rabbitmqctl, "rabbitmqctl -n \(node) \(arguments[0]) \(arguments.count > 1 ? arguments[1] : "") failed "
                    + "(\(Self.describe(result.terminationStatus))): \(message)")
        }
        return result.standardOutput
    }

    /// Far more than a listing of users or vhosts, or than rabbitmqctl's errors: past them Subprocess fails the run
    /// (it reserves each limit up front, so they are not set to the largest possible).
    private static let outputLimit = 4 << 20
    private static let errorLimit = 256 << 10

    private static func describe(_ status: TerminationStatus) -> String {
        switch status {
        case .exited(let code): "exit \(code)"
        case .signaled(let signal): "signal \(signal)"
        }
    }

    /// rabbitmqctl on the PATH, else in the sbin directories where packages put it.
    static func executable() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/sbin"] {
            let candidate = "\(directory)/rabbitmqctl"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw OperationsError(
            .rabbitmqctl, "rabbitmqctl not found (install rabbitmq-server, or run the printed plan on the broker's host)"
        )
    }
}
