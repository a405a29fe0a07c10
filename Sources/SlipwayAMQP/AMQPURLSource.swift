import Foundation
import SlipwayTransport

extension AMQPConfiguration {
    /// The broker URL, with its credentials, from the environment: `SLIPWAY_AMQP_URL` or `SLIPWAY_AMQP_URLS` (the same,
    /// named for a cluster's list of URLs), or the file that `SLIPWAY_AMQP_URL_FILE` or `SLIPWAY_AMQP_URLS_FILE` names
    /// (a mounted secret; its trailing newline is trimmed; a URLS file may hold a URL per line). Nil if none is set;
    /// two set is an error, since nobody can tell which one was meant.
    public static func url(fromEnvironment environment: [String: String]) throws -> String? {
        let names = ["SLIPWAY_AMQP_URL", "SLIPWAY_AMQP_URLS", "SLIPWAY_AMQP_URL_FILE", "SLIPWAY_AMQP_URLS_FILE"]
        let set = names.filter { environment[$0].map { !$0.isEmpty } ?? false }
        guard let name = set.first else { return nil }
        guard set.count == 1 else {
            throw TransportError(.badConfiguration, "both \(set[0]) and \(set[1]) are set: unset one")
        }
        let value = environment[name]!
        switch name {
        case "SLIPWAY_AMQP_URL_FILE": return try url(fromFile: value, variable: name, severalLines: false)
        case "SLIPWAY_AMQP_URLS_FILE": return try url(fromFile: value, variable: name, severalLines: true)
        default: return value
        }
    }

    static func url(fromFile path: String, variable: String = "SLIPWAY_AMQP_URL_FILE", severalLines: Bool = false)
        throws -> String
    {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TransportError(.badConfiguration, "\(variable): cannot read '\(path)'")
        }
        // The contents are a secret: errors name the file, never what is in it.
        var text = String(decoding: data, as: UTF8.self)
        while let last = text.last, last.isNewline { text.removeLast() }
        guard !text.isEmpty else { throw TransportError(.badConfiguration, "\(variable): '\(path)' is empty") }
        if severalLines {
            // A URL per line (or a comma-separated list): the list, comma-separated.
            return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: ",")
        }
        guard !text.contains(where: \.isNewline) else {
            throw TransportError(
                .badConfiguration,
                "\(variable): '\(path)' must hold one line, the URL (or a comma-separated list; SLIPWAY_AMQP_URLS_FILE takes a URL per line)")
        }
        return text
    }
}
