import Foundation
import Logging
import Synchronization
import SlipwayTransport

extension AMQPConfiguration {
    /// TLS for an `amqps://` URL. The broker's certificate chain and its name are checked unless verification is
    /// turned off explicitly (`verify=verify_none`).
    ///
    /// Query parameters follow the RabbitMQ URI convention: `cacertfile`, `certfile`, `keyfile`,
    /// `verify=verify_peer|verify_none`, `server_name_indication`. `TLSFiles` fill in the files the URL does not name.
    public struct TLS: Sendable, Hashable {
        /// PEM file of the CAs to trust; nil trusts the system's store (OpenSSL's default paths).
        public var caFile: String?
        /// Client certificate (PEM chain) and its private key (PEM, without passphrase), for brokers that ask for one.
        public var certFile: String?
        public var keyFile: String?
        /// Check the certificate chain and that the certificate names the host. Off only when asked for.
        public var verifyPeer: Bool
        /// The name the certificate must carry, also sent as SNI; nil: the URL's host.
        public var serverName: String?

        public init(
            caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, verifyPeer: Bool = true,
            serverName: String? = nil
        ) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.verifyPeer = verifyPeer
            self.serverName = serverName
        }

        init(query: URLQuery, files: TLSFiles) throws {
            func file(_ parameter: String, _ given: String?, _ variable: String) throws -> String? {
                let fromURL = query.take(parameter)
                let source = fromURL == nil ? variable : parameter
                guard let path = fromURL ?? given, !path.isEmpty else { return nil }
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw TransportError(.badConfiguration, "\(source): cannot read '\(path)'")
                }
                return path
            }
            caFile = try file("cacertfile", files.caFile, "SLIPWAY_AMQP_CA_FILE")
            certFile = try file("certfile", files.certFile, "SLIPWAY_AMQP_CERT_FILE")
            keyFile = try file("keyfile", files.keyFile, "SLIPWAY_AMQP_KEY_FILE")
            guard (certFile == nil) == (keyFile == nil) else {
                throw TransportError(.badConfiguration, "a client certificate needs both certfile and keyfile (the same file if it holds both)")
            }
            verifyPeer = try query.take("verify", as: "verify_peer or verify_none") {
                ["verify_peer": true, "verify_none": false][$0]
            } ?? true
            serverName = query.take("server_name_indication")
        }

        /// Where trust comes from, for errors and logs.
        var trustDescription: String {
            if let caFile { "trusting the CAs in \(caFile)" } else { "trusting the system's CA store" }
        }
    }

    /// The TLS files an `amqps://` URL may leave out, given apart: `SLIPWAY_AMQP_CA_FILE`, `SLIPWAY_AMQP_CERT_FILE` and
    /// `SLIPWAY_AMQP_KEY_FILE`, which a processor reads from its settings and `slip` from its environment. A file the
    /// URL names wins.
    public struct TLSFiles: Sendable, Hashable {
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?

        public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }

        /// From the three variables; an empty one counts as unset.
        public init(environment: [String: String]) {
            func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
            self.init(
                caFile: value("SLIPWAY_AMQP_CA_FILE"), certFile: value("SLIPWAY_AMQP_CERT_FILE"),
                keyFile: value("SLIPWAY_AMQP_KEY_FILE"))
        }
    }

    /// Logs, once per process, that this configuration does not check who the broker is.
    public func warnIfUnverified(_ logger: Logger) {
        guard let tls, !tls.verifyPeer, !unverifiedWarningGiven.exchange(true, ordering: .relaxed) else { return }
        logger.warning(
            "TLS without verification (verify=verify_none): the broker's certificate is not checked, so anyone in the path can pose as the broker",
            metadata: ["amqp.url": "\(redactedURL)"])
    }
}

private let unverifiedWarningGiven = Atomic<Bool>(false)
