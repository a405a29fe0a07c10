import Foundation
import NIOSSL
import PostgresNIO

/// An error of the PostgreSQL hop record, with a stable code. Never holds the password.
public struct PostgresStoreError: Error, CustomStringConvertible, Sendable, Equatable {
    /// `bad-url`, `bad-sslmode`, `schema-too-new`, `database`, `corrupt-record`, `stopped` (a call after the store's
    /// service ended).
    public let code: String
    public let message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(message) [\(code)]" }
}

/// Where the shared hop record lives: `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE&sslrootcert=PATH`
/// (`postgresql://` too). The modes are libpq's: `disable`, `prefer` (the default: TLS if the server offers it,
/// unverified), `require` (TLS, unverified; verified against `sslrootcert` if given, as libpq does), `verify-ca`
/// (the chain, not the name), `verify-full` (the chain and the host name).
public struct PostgresStoreURL: Sendable {
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    public var sslRootCert: String?
    /// `application_name`, shown in `pg_stat_activity`.
    public var applicationName: String?

    public init(_ text: String) throws {
        guard let components = URLComponents(string: text),
            let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql"
        else {
            throw PostgresStoreError("bad-url", "the store URL must be postgres://USER:PASSWORD@HOST:PORT/DATABASE, got '\(Self.redact(text))'")
        }
        guard let host = components.host, !host.isEmpty else {
            throw PostgresStoreError("bad-url", "the store URL names no host: '\(Self.redact(text))'")
        }
        self.host = host
        port = components.port ?? 5432
        guard let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw PostgresStoreError("bad-url", "the store URL names no user: '\(Self.redact(text))'")
        }
        username = user
        password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? user : path
        sslMode = .prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let mode = SSLMode(rawValue: value) else {
                    throw PostgresStoreError(
                        "bad-sslmode",
                        "sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")); got '\(item.value ?? "")'")
                }
                sslMode = mode
            case "sslrootcert": sslRootCert = item.value
            case "application_name": applicationName = item.value
            default:
                throw PostgresStoreError(
                    "bad-url", "unknown store URL parameter '\(item.name)' (known: sslmode, sslrootcert, application_name)")
            }
        }
        if sslMode == .disable && sslRootCert != nil {
            throw PostgresStoreError("bad-sslmode", "sslrootcert needs TLS: sslmode=disable turns it off")
        }
        if let file = sslRootCert, !FileManager.default.isReadableFile(atPath: file) {
            throw PostgresStoreError("bad-sslmode", "sslrootcert: cannot read '\(file)'")
        }
    }

    /// The URL with its password replaced, for logs and errors.
    public var redacted: String {
        var text = "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
        text += "?sslmode=\(sslMode.rawValue)"
        if let sslRootCert { text += "&sslrootcert=\(sslRootCert)" }
        return text
    }

    /// A URL as text, its password replaced; for text that did not even parse.
    static func redact(_ text: String) -> String {
        guard let at = text.range(of: "@"), let schemeEnd = text.range(of: "://"), schemeEnd.upperBound < at.lowerBound
        else { return text.contains("@") ? "(unreadable URL)" : text }
        let credentials = text[schemeEnd.upperBound..<at.lowerBound]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return text[..<colon] + ":***" + text[at.lowerBound...]
    }

    struct TLSSetting {
        var context: TLSConfiguration?
        var isRequired: Bool
    }

    func clientTLS() throws -> PostgresClient.Configuration.TLS {
        let setting = try tls()
        guard let context = setting.context else { return .disable }
        return setting.isRequired ? .require(context) : .prefer(context)
    }

    /// The TLS settings for the mode.
    func tls() throws -> TLSSetting {
        func context(_ verification: CertificateVerification) throws -> TLSConfiguration {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = verification
            if let sslRootCert {
                do {
                    configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(sslRootCert))
                } catch {
                    throw PostgresStoreError("bad-sslmode", "sslrootcert: '\(sslRootCert)' holds no PEM certificate")
                }
            }
            return configuration
        }
        switch sslMode {
        case .disable: return TLSSetting(context: nil, isRequired: false)
        case .prefer: return TLSSetting(context: try context(.none), isRequired: false)
        case .require:
            return TLSSetting(context: try context(sslRootCert == nil ? .none : .noHostnameVerification), isRequired: true)
        case .verifyCA: return TLSSetting(context: try context(.noHostnameVerification), isRequired: true)
        case .verifyFull: return TLSSetting(context: try context(.fullVerification), isRequired: true)
        }
    }

    /// One connection's settings: the store opens one first, to migrate, so that a wrong password, host or TLS setting
    /// fails at once rather than in the pool's retries. Public for tools that read the record (the chaos run's checks).
    public func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch try self.tls() {
        case let setting where setting.isRequired: tls = .require(try NIOSSLContext(configuration: setting.context!))
        case let setting where setting.context != nil: tls = .prefer(try NIOSSLContext(configuration: setting.context!))
        default: tls = .disable
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    func clientConfiguration() throws -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: try clientTLS())
        if let applicationName { configuration.options.additionalStartupParameters = [("application_name", applicationName)] }
        return configuration
    }
}
