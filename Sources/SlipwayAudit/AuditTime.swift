import Foundation
import SlipwayCore

/// Durations and instants as operators type them (`90s`, `10m`, `1h`, `2d`, or an RFC 3339 timestamp), and as the
/// audit commands print them.
public enum AuditTime {
    static let units: [(suffix: String, seconds: Double)] = [
        ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400), ("w", 604_800),
    ]

    /// Seconds in a duration: one or more `<number><unit>` parts, units `ms`, `s`, `m`, `h`, `d`, `w`
    /// (`90s`, `10m`, `1.5h`, `2d`, `1h30m`). No sign, no bare number.
    public static func parseDuration(_ text: String) throws -> TimeInterval {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let problem = AuditError.invalid(
            "'\(text)' is not a duration: use a number and a unit (ms, s, m, h, d, w), e.g. 90s, 10m, 1h, 2d")
        guard !trimmed.isEmpty else { throw problem }
        var rest = Substring(trimmed)
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, let value = Double(number), value.isFinite else { throw problem }
            rest = rest.dropFirst(number.count)
            let letters = rest.prefix { $0.isASCII && $0.isLetter }
            guard let unit = units.first(where: { $0.suffix == letters.lowercased() }) else { throw problem }
            rest = rest.dropFirst(letters.count)
            total += value * unit.seconds
        }
        guard total <= 100 * 365 * 86_400 else { throw AuditError.invalid("'\(text)' is longer than a hundred years") }
        return total
    }

    /// An instant: a duration means that long before `now` (`1h`: an hour ago); otherwise an RFC 3339 timestamp
    /// (`2026-11-22T05:34:20Z`, `2026-11-22T07:34:20.5+02:00`), or a date alone (`2026-11-22`, midnight UTC).
    public static func parseInstant(_ text: String, now: Date = Date()) throws -> Date {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if looksLikeTimestamp(trimmed) {
            if let date = parseTimestamp(trimmed) { return date }
            throw AuditError.invalid(
                "'\(text)' is not an RFC 3339 timestamp such as 2026-11-22T05:34:20Z (or a duration such as 1h)")
        }
        do {
            return now.addingTimeInterval(-(try parseDuration(trimmed)))
        } catch {
            throw AuditError.invalid(
                "'\(text)' is neither a duration (90s, 10m, 1h, 2d) nor an RFC 3339 timestamp (2026-11-22T05:34:20Z)")
        }
    }

    static func looksLikeTimestamp(_ text: String) -> Bool {
        let characters = Array(text.utf8)
        return characters.count >= 10 && characters[4] == UInt8(ascii: "-") && characters[7] == UInt8(ascii: "-")
    }

    static func parseTimestamp(_ text: String) -> Date? {
        if text.utf8.count == 10 {
            return try? Date.ISO8601FormatStyle().year().month().day().parse(text)
        }
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// `850µs`, `12.3ms`, `1.24s`, then as `formatDuration(seconds:)`.
    public static func formatDuration(micros: Double) -> String {
        if micros < 1_000 { return "\(Int(micros.rounded()))µs" }
        if micros < 1_000_000 { return significant(micros / 1_000) + "ms" }
        return formatDuration(seconds: micros / 1_000_000)
    }

    /// `850µs`, `12.3ms`, `1.24s`, `10m`, `2m05s`, `1h`, `3h12m`, `2d04h`.
    public static func formatDuration(seconds: Double) -> String {
        if seconds < 1 { return formatDuration(micros: seconds * 1_000_000) }
        if seconds < 60 { return significant(seconds) + "s" }
        let whole = Int(seconds.rounded())
        func pair(_ major: Int, _ majorUnit: String, _ minor: Int, _ minorUnit: String) -> String {
            minor == 0 ? "\(major)\(majorUnit)" : "\(major)\(majorUnit)\(minor < 10 ? "0" : "")\(minor)\(minorUnit)"
        }
        if whole < 3_600 { return pair(whole / 60, "m", whole % 60, "s") }
        if whole < 86_400 { return pair(whole / 3_600, "h", whole % 3_600 / 60, "m") }
        return pair(whole / 86_400, "d", whole % 86_400 / 3_600, "h")
    }

    /// Three significant digits: `1.24`, `12.3`, `123`.
    static func significant(_ value: Double) -> String {
        if value >= 100 { return String(Int(value.rounded())) }
        let decimals = value >= 10 ? 1 : 2
        var text = String(format: "%.\(decimals)f", value)
        while text.contains("."), text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    /// `2026-11-22T05:34:20.123Z`.
    public static func formatTimestamp(_ date: Date) -> String { SlipCodec.formatTimestamp(date) }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1_000).rounded()) }
    static func date(milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1_000) }
}
