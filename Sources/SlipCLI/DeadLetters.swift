import ArgumentParser
import Foundation
import Slipway
import SlipwayOperations

/// `slip dlq`: look into the dead-letter queue (`<prefix>.dead-letters`), replay or drop parked messages. How the
/// queue is read, and what is acked or given back, is `DeadLetterScan`'s (SlipwayOperations).
struct DeadLetters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List, show, replay or drop the messages parked in the dead-letter queue.",
        discussion: """
            Parked messages are named by their parked id (header x-slipway-parked-id; messages parked by older versions, without it, by their AMQP message id). show, replay and drop also take a unique start of it (at least 4 characters). See docs/dead-letters.md.

            Examples:
              slip dlq list
              slip dlq show 5f0c3a9e-…
              slip dlq replay 5f0c3a9e-…          # back to the queue it was taken from
              slip dlq replay --all
              slip dlq drop 5f0c3a9e-…
              slip dlq drop --all --yes

            Exit status: 0 done; 1 some messages could not be replayed; 2 bad usage or an unknown parked id; 3 the broker could not be reached.
            """,
        subcommands: [List.self, Show.self, Replay.self, Drop.self])
}

// MARK: - Subcommands

extension DeadLetters {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the parked messages; consumes nothing (each is read and given back).")

        @Option(help: "Show at most N messages (those at the head of the queue).")
        var limit: Int?

        @Flag(help: "Print a JSON array.")
        var json = false

        @OptionGroup var broker: BrokerOptions

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let scan = try await DeadLetterScan.open(broker, limit: limit)
            let deliveries = await scan.collect(limit: limit)
            let summaries = deliveries.map(ParkedMessage.init)
            await scan.finish(ack: [])
            if json {
                printJSON(summaries)
                return
            }
            if summaries.isEmpty {
                print("no parked messages in '\(scan.queue)'")
                return
            }
            let rows =
                [["PARKED-ID", "CODE", "ORIGINAL-QUEUE", "SLIP", "PARKED-AT", "SIZE", "REASON"]]
                + summaries.map {
                    [
                        $0.parkedId, $0.reasonCode ?? "-", $0.originalQueue ?? "-", $0.slipId ?? "-",
                        $0.parkedAt ?? "-", String($0.size), $0.reason.map { String($0.prefix(120)) } ?? "-",
                    ]
                }
            printTable(rows)
            let more = limit == summaries.count ? " (the first \(summaries.count): there may be more)" : ""
            print("\(summaries.count) parked message(s) in '\(scan.queue)'\(more)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one parked message: its headers and its body. Leaves it (and every other) in place.")

        @Argument(help: "The parked id (see `slip dlq list`), or a unique start of it (at least 4 characters).")
        var parkedID: String

        @Flag(help: "Print a JSON object (the body as JSON when it parses, else as text in bodyText).")
        var json = false

        @OptionGroup var broker: BrokerOptions

        func run() async throws {
            let scan = try await DeadLetterScan.open(broker, limit: nil)
            let delivery = try await scan.singleOrExit(parkedID, in: await scan.collect())
            await scan.finish(ack: [])
            let body = Data(delivery.body)
            // A parked body may be hostile: too deep a nesting would crash Foundation's parser.
            let parsed = (try? SlipCodec.checkNesting(body)) == nil ? nil : try? JSONDecoder().decode(JSONValue.self, from: body)
            if json {
                struct Shown: Encodable {
                    var parkedId: String
                    var headers: [String: String]
                    var messageId: String?
                    var correlationId: String?
                    var contentType: String?
                    var size: Int
                    var body: JSONValue?
                    var bodyText: String?
                }
                printJSON(
                    Shown(
                        parkedId: DeadLetterScan.parkedID(of: delivery), headers: delivery.headers, messageId: delivery.messageID,
                        correlationId: delivery.correlationID, contentType: delivery.contentType,
                        size: delivery.body.count, body: parsed,
                        bodyText: parsed == nil ? String(decoding: delivery.body, as: UTF8.self) : nil))
                return
            }
            print("parked id     \(DeadLetterScan.parkedID(of: delivery))")
            if let messageID = delivery.messageID { print("message id    \(messageID)") }
            if let correlationID = delivery.correlationID { print("correlation   \(correlationID)") }
            if let contentType = delivery.contentType { print("content type  \(contentType)") }
            print("size          \(delivery.body.count) bytes")
            print("headers")
            for (name, value) in delivery.headers.sorted(by: { $0.key < $1.key }) { print("  \(name): \(value)") }
            if let parsed {
                print("body (JSON)")
                print(pretty(parsed))
            } else {
                print("body (text, escaped)")
                print(escaped(delivery.body))
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish parked messages back to the queue they were taken from, then remove them from the dead-letter queue.",
            discussion: """
                The parked body is published, persistent, to its x-slipway-original-queue through the default exchange;
                only once the broker has confirmed that publish is the parked copy acknowledged. A compensation-failed
                slip resumes its walk-back at attempt 1; any other message is processed afresh (and parked again if it
                still cannot be).
                """)

        @OptionGroup var selection: ParkedSelection

        @Flag(help: "Print a JSON array of what was replayed.")
        var json = false

        @OptionGroup var broker: BrokerOptions

        func run() async throws {
            let scan = try await DeadLetterScan.open(broker, limit: nil)
            let deliveries = await scan.collect()
            var chosen = deliveries
            if let id = selection.parkedID { chosen = [try await scan.singleOrExit(id, in: deliveries)] }
            let plan = ReplayPlan(chosen)
            do {
                try await scan.replay(plan)
            } catch {
                printError("replaying failed, nothing removed from '\(scan.queue)': \(error)")
                throw ExitCodes.unavailable
            }

            struct Replayed: Encodable {
                var parkedId: String
                var reasonCode: String?
                var slipId: String?
                var queue: String
            }
            let done = plan.replayable.map {
                Replayed(
                    parkedId: DeadLetterScan.parkedID(of: $0.delivery),
                    reasonCode: $0.delivery.headers[ParkedHeaders.reasonCode],
                    slipId: $0.delivery.headers[ParkedHeaders.slipID], queue: $0.message.routingKey)
            }
            if json {
                printJSON(done)
            } else {
                for item in done {
                    print("replayed \(item.parkedId) (\(item.reasonCode ?? "-"), slip \(item.slipId ?? "-")) -> \(item.queue)")
                }
                if done.isEmpty && plan.skipped.isEmpty { print("no parked messages in '\(scan.queue)'") }
            }
            for delivery in plan.skipped {
                printError("\(DeadLetterScan.parkedID(of: delivery)) has no \(ParkedHeaders.originalQueue) header: left in place")
            }
            if !plan.skipped.isEmpty { throw ExitCode(1) }
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove parked messages for good.")

        @OptionGroup var selection: ParkedSelection

        @Flag(help: "Confirm --all.")
        var yes = false

        @Flag(help: "Print a JSON array of what was dropped.")
        var json = false

        @OptionGroup var broker: BrokerOptions

        func validate() throws {
            if selection.all && !yes { throw ValidationError("--all drops every parked message: add --yes to confirm") }
        }

        func run() async throws {
            let scan = try await DeadLetterScan.open(broker, limit: nil)
            let deliveries = await scan.collect()
            var chosen = deliveries
            if let id = selection.parkedID { chosen = [try await scan.singleOrExit(id, in: deliveries)] }
            await scan.finish(ack: chosen)
            let dropped = chosen.map(ParkedMessage.init)
            if json {
                printJSON(dropped)
                return
            }
            for item in dropped {
                print(
                    "dropped \(item.parkedId) (\(item.reasonCode ?? "-"), slip \(item.slipId ?? "-"), from \(item.originalQueue ?? "-"))")
            }
            if dropped.isEmpty { print("no parked messages in '\(scan.queue)'") }
        }
    }
}

// MARK: - Output helpers

private func printTable(_ rows: [[String]]) {
    guard let header = rows.first else { return }
    var widths = header.map(\.count)
    for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
    for row in rows {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}

/// JSON indented by two spaces, keys sorted, empty arrays and objects kept on one line.
private func pretty(_ value: JSONValue, indent: String = "") -> String {
    let inner = indent + "  "
    switch value {
    case .array(let items):
        if items.isEmpty { return "[]" }
        return "[\n" + items.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
    case .object(let members):
        if members.isEmpty { return "{}" }
        let lines = members.sorted { $0.key < $1.key }.map { key, member in
            "\(inner)\(pretty(.string(key))): \(pretty(member, indent: inner))"
        }
        return "{\n" + lines.joined(separator: ",\n") + "\n\(indent)}"
    default:
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}

/// A body that is not JSON, as text a terminal shows safely: printable ASCII as is, the usual escapes, other bytes
/// of valid UTF-8 as themselves (unless control characters), and invalid bytes as \xNN.
private func escaped(_ bytes: [UInt8]) -> String {
    var out = ""
    if let text = String(validating: bytes, as: UTF8.self) {
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value) {
                    out += String(format: "\\u{%02x}", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "\n"): out += "\\n"
        case UInt8(ascii: "\r"): out += "\\r"
        case UInt8(ascii: "\t"): out += "\\t"
        case UInt8(ascii: "\\"): out += "\\\\"
        case 0x20..<0x7f: out.unicodeScalars.append(Unicode.Scalar(byte))
        default: out += String(format: "\\x%02x", byte)
        }
    }
    return out
}
