import Foundation

/// The order API's own settings: `--flag VALUE`, else the environment variable, else the default. The broker's
/// settings are the processors' (`SLIPWAY_AMQP_URL`, `SLIPWAY_QUEUE_PREFIX`, `SLIPWAY_QUEUE_TYPE`,
/// `SLIPWAY_SIGNING_KEYS`, the `SLIPWAY_MAX_*` limits), read where the transport and the outbox are made.
struct OrderSettings {
    /// One setting: its flag, its variable, its default, and what it means (for `--help`).
    struct Setting {
        var flag: String
        var environment: String
        var defaultValue: String
        var help: String
    }

    static let database = Setting(
        flag: "--db", environment: "ORDER_API_DB", defaultValue: ".slipway/order-api.sqlite",
        help: "the app's SQLite file: its orders and its outbox")
    static let host = Setting(
        flag: "--host", environment: "ORDER_API_HOST", defaultValue: "127.0.0.1",
        help: "the address to listen on (loopback by default)")
    static let port = Setting(
        flag: "--port", environment: "ORDER_API_PORT", defaultValue: "8080", help: "the HTTP port")
    static let template = Setting(
        flag: "--template", environment: "ORDER_API_TEMPLATE", defaultValue: "Slips/order-fulfillment.yaml",
        help: "the slip template an order starts")
    /// Test-only: the chaos run holds each order's transaction open this long, so that its kills land inside one.
    static let commitDelay = Setting(
        flag: "--commit-delay-ms", environment: "ORDER_API_COMMIT_DELAY_MS", defaultValue: "0",
        help: "test only: wait this long inside each order's transaction, before its commit")
    static let all = [database, host, port, template, commitDelay]

    var database: String
    var host: String
    var port: Int
    var template: String
    var commitDelayMs: Int

    init(arguments: [String], environment: [String: String]) throws {
        var given: [String: String] = [:]
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            guard Self.all.contains(where: { $0.flag == flag }) else { throw UsageError("unknown option \(flag)") }
            guard let value = rest.popFirst() else { throw UsageError("\(flag) needs a value") }
            given[flag] = value
        }
        func value(_ setting: Setting) -> String {
            given[setting.flag] ?? environment[setting.environment].flatMap { $0.isEmpty ? nil : $0 } ?? setting.defaultValue
        }
        func number(_ setting: Setting, _ range: ClosedRange<Int>) throws -> Int {
            guard let number = Int(value(setting)), range.contains(number) else {
                throw UsageError("\(setting.flag) (\(setting.environment)) takes a number in \(range), got '\(value(setting))'")
            }
            return number
        }
        database = value(Self.database)
        host = value(Self.host)
        port = try number(Self.port, 0...65_535)
        template = value(Self.template)
        commitDelayMs = try number(Self.commitDelay, 0...60_000)
    }

    static var usage: String {
        "usage: order-api [--db PATH] [--host ADDRESS] [--port N] [--template PATH]\n"
            + all.map { "  \($0.flag) (\($0.environment), default \($0.defaultValue)): \($0.help)" }.joined(separator: "\n")
            + "\n  and the processors' broker settings: SLIPWAY_AMQP_URL, SLIPWAY_QUEUE_PREFIX, SLIPWAY_QUEUE_TYPE, ..."
    }
}

struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
