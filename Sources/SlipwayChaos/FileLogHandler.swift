import Foundation
import Logging
import Slipway

/// Writes the driver's own log lines (its AMQP connections reconnecting through the broker restarts, mostly) to a
/// file, so that they do not break up the progress lines and the report on the terminal.
struct FileLogHandler: LogHandler {
    let label: String
    let path: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let metadata = event.metadata
        let merged = self.metadata.merging(metadata ?? [:]) { _, new in new }
        let fields = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        appendLine("\(SlipCodec.formatTimestamp(Date())) \(event.level) \(label): \(event.message)\(fields)", to: path)
    }
}
