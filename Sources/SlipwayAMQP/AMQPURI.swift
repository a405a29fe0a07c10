import Foundation

/// An AMQP URI split into its parts, after RabbitMQ's URI spec (docs/uri-spec):
/// `amqp[s]://[user[:password]@]host[:port][/vhost][?name=value&...]`, with percent-decoded user, password, host,
/// vhost and query.
///
/// Read by hand rather than by `URLComponents`: its host handling (IDNA) loads ICU's normalisation data on first use,
/// 1.5 MB of every processor's resident memory for a URL read once at startup (docs/performance.md, memory).
struct AMQPURI {
    /// Lowercased: `amqp` or `amqps`.
    var scheme: String
    var user: String?
    var password: String?
    /// Without the brackets of an IPv6 literal; empty when the URI names no host.
    var host: String
    var port: Int?
    /// The path after its first "/", decoded; nil when there is no path at all.
    var virtualHost: String?
    var query: [(name: String, value: String)]
    /// Where the password's encoded text is in the URI, to mask it.
    let passwordRange: Range<String.Index>?

    enum Failure: Error, Equatable {
        case notAMQP
        case malformed(String)
    }

    init(_ text: String) throws(Failure) {
        guard let separator = text.range(of: "://") else { throw .notAMQP }
        scheme = text[..<separator.lowerBound].lowercased()
        guard scheme == "amqp" || scheme == "amqps" else { throw .notAMQP }
        guard !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F || $0 == "#" }) else {
            throw .malformed("spaces, control characters and '#' must be percent-encoded")
        }

        let rest = text[separator.upperBound...]
        let queryStart = rest.firstIndex(of: "?") ?? rest.endIndex
        let pathStart = rest[..<queryStart].firstIndex(of: "/") ?? queryStart
        var authority = rest[..<pathStart]

        user = nil
        password = nil
        var passwordRange: Range<String.Index>?
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decode(userInfo[..<colon], "user")
                passwordRange = userInfo.index(after: colon)..<at
                password = try Self.decode(userInfo[userInfo.index(after: colon)...], "password")
            } else {
                user = try Self.decode(userInfo, "user")
            }
            authority = authority[authority.index(after: at)...]
        }
        self.passwordRange = passwordRange

        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .malformed("an IPv6 host needs its closing ']'") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .malformed("only ':port' may follow an IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = try Self.decode(authority[..<colon], "host")
            portText = authority[authority.index(after: colon)...]
        } else {
            host = try Self.decode(authority, "host")
        }
        port = nil
        if let portText, !portText.isEmpty {
            guard portText.allSatisfy(\.isASCII), let port = Int(portText), (1...65535).contains(port) else {
                throw .malformed("the port must be a number from 1 to 65535")
            }
            self.port = port
        }

        let path = rest[pathStart..<queryStart]
        virtualHost = path.isEmpty ? nil : try Self.decode(path.dropFirst(), "vhost")

        query = []
        if queryStart < rest.endIndex {
            for item in rest[rest.index(after: queryStart)...].split(separator: "&", omittingEmptySubsequences: true) {
                let equals = item.firstIndex(of: "=") ?? item.endIndex
                let value = equals < item.endIndex ? item[item.index(after: equals)...] : ""
                query.append((try Self.decode(item[..<equals], "query"), try Self.decode(value, "query")))
            }
        }
    }

    private static func decode(_ text: Substring, _ part: String) throws(Failure) -> String {
        guard text.contains("%") else { return String(text) }
        guard let decoded = text.removingPercentEncoding else { throw .malformed("bad percent-encoding in the \(part)") }
        return decoded
    }
}
