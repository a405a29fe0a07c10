import Foundation
import Slipway

/// Where the URL files send clients: host and port only (a user, password or vhost in the URL is ignored).
public struct BrokerAddress: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// Every node of a URL list (a cluster's nodes as URLs separated by commas), in order.
    public static func list(_ urls: String) throws(OperationsError) -> [BrokerAddress] {
        let addresses: [String]
        do {
            addresses = try AMQPConfiguration.split(urls)
        } catch {
            throw OperationsError(.invalidBrokerURL, "\(error)")
        }
        return try addresses.map { url throws(OperationsError) in try BrokerAddress(url: url) }
    }

    public var description: String { "\(host):\(port)" }

    public init(url: String) throws(OperationsError) {
        guard let components = URLComponents(string: url), components.scheme == "amqp" else {
            throw OperationsError(.invalidBrokerURL, "not an AMQP URL (amqp://host:port/)")
        }
        let host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        self.host = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        port = components.port ?? 5672
    }
}

/// One password file per user (`DIR/<user>`) and the URL that goes with it (`DIR/<user>.url`), both readable by
/// their owner only. A password that exists is kept (so running processors keep working) unless rotated.
public struct PasswordFiles: Sendable {
    public let directory: String
    /// A cluster's nodes, or the one broker.
    public let brokers: [BrokerAddress]
    public let vhost: String

    public init(directory: String, brokers: [BrokerAddress], vhost: String) {
        self.directory = directory
        self.brokers = brokers
        self.vhost = vhost
    }

    public func passwordPath(_ user: String) -> String { "\(directory)/\(user)" }
    public func urlPath(_ user: String) -> String { "\(directory)/\(user).url" }

    /// Makes sure every user has a password file and a current URL file.
    public func prepare(_ users: [String], rotate: Bool) throws {
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

    public func password(of user: String) throws -> String {
        let text = try String(contentsOfFile: passwordPath(user), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw OperationsError(.passwordFile, "\(passwordPath(user)) is empty") }
        return text
    }

    /// `amqp://user:password@host:port/vhost`; the default vhost `/` is the empty path. For a cluster, a URL per
    /// node, separated by commas.
    public func url(user: String, password: String) -> String {
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
    static func writePrivately(_ text: String, to path: String) throws(OperationsError) {
        let temporary = "\(path).tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0o600)
        guard descriptor >= 0 else {
            throw OperationsError(.passwordFile, "cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw OperationsError(.passwordFile, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
