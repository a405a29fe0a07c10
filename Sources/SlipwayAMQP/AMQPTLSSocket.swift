import CRabbitMQ
import Foundation
import SlipwayTransport

/// librabbitmq's OpenSSL socket set up from `AMQPConfiguration.TLS`, and the words for what went wrong when its
/// handshake fails. Used on its connection's thread only, like the connection.
final class AMQPTLSSocket {
    let socket: OpaquePointer  // amqp_socket_t, opaque to Swift
    /// Written by OpenSSL callbacks during handshakes; the socket's SSL context points at it, so it must outlive the
    /// socket: the connection destroys the socket (amqp_destroy_connection) before it lets go of this object.
    private let report: UnsafeMutablePointer<slipway_tls_report>
    private let tls: AMQPConfiguration.TLS
    private let address: String
    private let expectedName: String

    init(state: amqp_connection_state_t, configuration: AMQPConfiguration, tls: AMQPConfiguration.TLS) throws {
        self.tls = tls
        address = "\(configuration.host):\(configuration.port)"
        expectedName = tls.serverName ?? configuration.host
        guard let socket = amqp_ssl_socket_new(state) else {
            throw TransportError(.libraryFailed, "librabbitmq could not create a TLS socket: \(Self.takeReason() ?? "no reason given")")
        }
        self.socket = socket
        // From here on every property is set, so a throw below still runs deinit and frees this.
        report = .allocate(capacity: 1)
        report.initialize(to: slipway_tls_report())
        if let serverName = tls.serverName {
            guard serverName.utf8.count < MemoryLayout.size(ofValue: report.pointee.server_name) else {
                throw TransportError(.badConfiguration, "server_name_indication is too long")
            }
            withUnsafeMutableBytes(of: &report.pointee.server_name) { buffer in
                buffer.copyBytes(from: serverName.utf8)
            }
        }
        guard slipway_tls_configure(socket, report, tls.verifyPeer ? 1 : 0, expectedName) == 1 else {
            throw TransportError(
                .badConfiguration,
                "'\(expectedName)' cannot be checked against a certificate: not a host name or IP address", permanent: true)
        }
        if let caFile = tls.caFile {
            guard amqp_ssl_socket_set_cacert(socket, caFile) == AMQP_STATUS_OK.rawValue else {
                throw TransportError(
                    .tlsFailed,
                    "cannot load CA file '\(caFile)': \(Self.takeReason() ?? "not PEM certificates?")", permanent: true)
            }
        } else if tls.verifyPeer {
            guard slipway_tls_trust_system_store(socket) == 1 else {
                throw TransportError(.tlsFailed, "cannot load the system's CA store: \(Self.takeReason() ?? "no reason given")")
            }
        }
        if let certFile = tls.certFile, let keyFile = tls.keyFile {
            guard amqp_ssl_socket_set_key(socket, certFile, keyFile) == AMQP_STATUS_OK.rawValue else {
                throw TransportError(
                    .tlsFailed,
                    "cannot use client certificate '\(certFile)' with key '\(keyFile)': "
                        + "\(Self.takeReason() ?? "not PEM, or the key has a passphrase?")", permanent: true)
            }
        }
    }

    deinit { report.deallocate() }

    /// Why `amqp_socket_open` failed with `status`, in terms a person can act on.
    func openingFailed(_ status: Int32) -> TransportError {
        let reason = Self.takeReason()
        let ssl = [
            AMQP_STATUS_SSL_ERROR, AMQP_STATUS_SSL_CONNECTION_FAILED, AMQP_STATUS_SSL_PEER_VERIFY_FAILED,
            AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED,
        ].map(\.rawValue).contains(status)
        guard ssl else {
            return TransportError(.unreachable, "cannot reach RabbitMQ at \(address): \(AMQPConnection.statusText(status))")
        }
        let failed = "TLS handshake with \(address) failed"
        let error = report.pointee.verify_error
        if error != 0 {
            let what = String(cString: slipway_tls_verify_error_text(error))
            if error == X509_V_ERR_HOSTNAME_MISMATCH || error == X509_V_ERR_IP_ADDRESS_MISMATCH {
                return TransportError(
                    .tlsFailed,
                    "\(failed): certificate verify failed: \(what): the broker's certificate is not for '\(expectedName)'"
                        + " (connect by a name the certificate lists, or set server_name_indication)", permanent: true)
            }
            let subject = withUnsafeBytes(of: report.pointee.subject) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let depth = report.pointee.verify_depth == 0 ? "the broker's certificate" : "certificate"
            let remedy = tls.caFile == nil ? "; name the broker's CA with cacertfile= or SLIPWAY_AMQP_CA_FILE" : ""
            return TransportError(
                .tlsFailed,
                "\(failed): certificate verify failed: \(what) (\(depth) \(subject); \(tls.trustDescription)\(remedy))",
                permanent: true)
        }
        guard let reason else { return TransportError(.tlsFailed, "\(failed): \(AMQPConnection.statusText(status))") }
        return TransportError(.tlsFailed, "\(failed): \(reason)\(Self.hint(for: reason, address: address))")
    }

    /// OpenSSL's reason for the last failure on this thread, if it gave one; clears it.
    static func takeReason() -> String? {
        slipway_tls_take_error_reason().map { String(cString: $0) }
    }

    /// A broker refuses a client certificate with an alert that arrives after the handshake (TLS 1.3): say what it means.
    static func explainAlert(_ reason: String) -> String {
        if reason.contains("unknown ca") || reason.contains("bad certificate") {
            return "\(reason): the broker does not accept the client certificate"
        }
        if reason.contains("certificate required") {
            return "\(reason): the broker wants a client certificate (certfile and keyfile)"
        }
        return reason
    }

    private static func hint(for reason: String, address: String) -> String {
        if reason.contains("wrong version number") || reason.contains("packet length too long")
            || reason.contains("record layer failure")
        {
            return " (is \(address) a TLS listener? RabbitMQ's usual TLS port is 5671)"
        }
        if reason.contains("certificate required") || reason.contains("handshake failure") {
            return " (does the broker want a client certificate? give certfile and keyfile)"
        }
        return ""
    }
}
