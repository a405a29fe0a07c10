import Foundation
import SlipwayTransport

extension AMQPConfiguration {
    /// The broker URL, with its credentials, from the environment: `SLIPWAY_AMQP_URL`, or the file that
    /// `SLIPWAY_AMQP_URL_FILE` names (a mounted secret; its trailing newline is trimmed). Nil if neither is set; both
    /// set is an error, since nobody can tell which one was meant.
    public static func url(fromEnvironment environment: [String: String]) throws -> String? {
        let direct = environment["SLIPWAY_AMQP_URL"].flatMap { $0.isEmpty ? nil : $0 }
        let file = environment["SLIPWAY_AMQP_URL_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        switch (direct, file) {
        case (nil, nil):
            return nil
        case (let url?, nil):
            return url
        case (nil, let path?):
            return try url(fromFile: path)
        case (_?, _?):
            throw TransportError("both SLIPWAY_AMQP_URL and SLIPWAY_AMQP_URL_FILE are set: unset one")
        }
    }

    static func url(fromFile path: String) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TransportError("SLIPWAY_AMQP_URL_FILE: cannot read '\(path)'")
        }
        // The contents are a secret: errors name the file, never what is in it.
        var text = String(decoding: data, as: UTF8.self)
        while let last = text.last, last.isNewline { text.removeLast() }
        guard !text.isEmpty else { throw TransportError("SLIPWAY_AMQP_URL_FILE: '\(path)' is empty") }
        guard !text.contains(where: \.isNewline) else {
            throw TransportError("SLIPWAY_AMQP_URL_FILE: '\(path)' must hold one line, the URL")
        }
        return text
    }
}
