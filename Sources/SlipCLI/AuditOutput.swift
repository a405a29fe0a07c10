import ArgumentParser
import Foundation
import Slipway
import SlipwayAudit

/// Shared pieces of the `slip audit` commands: option parsing with one-line errors, and aligned text tables.
enum AuditCLI {
    /// Runs a command body; every refusal becomes one line `slip: ...` on stderr and exit code 2.
    static func run(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as AuditError {
            printError(error.message)
            throw ExitCodes.badInput
        } catch let error as ExitCode {
            throw error
        } catch {
            printError(String(describing: error).replacingOccurrences(of: "\n", with: " "))
            throw ExitCodes.badInput
        }
    }

    static func limit(_ text: String?, default value: Int) throws -> Int {
        guard let text else { return value }
        guard let limit = Int(text.replacingOccurrences(of: "_", with: "")), limit >= 1 else {
            throw AuditError(.invalidArgument, "--limit takes a whole number of at least 1, got '\(text)'")
        }
        return limit
    }

    static func state(_ text: String?) throws -> SlipState? {
        guard let text else { return nil }
        guard let state = SlipState(rawValue: text) else {
            let known = SlipState.allCases.map(\.rawValue).joined(separator: ", ")
            throw AuditError(.invalidArgument, "unknown state '\(text)' (one of \(known))")
        }
        return state
    }

    static func name(_ text: String?, option: String) throws -> String? {
        guard let text else { return nil }
        guard Slip.isValidName(text) else {
            throw AuditError(
                .invalidArgument, "\(option) takes a name of 1 to 64 characters of A-Z a-z 0-9 _ -, got '\(text)'")
        }
        return text
    }

    static func instant(_ text: String?, option: String, now: Date) throws -> Date? {
        guard let text else { return nil }
        do {
            return try AuditTime.parseInstant(text, now: now)
        } catch let error as AuditError {
            throw AuditError(.invalidArgument, "\(option): \(error.message)")
        }
    }

    static func duration(_ text: String, option: String) throws -> TimeInterval {
        do {
            return try AuditTime.parseDuration(text)
        } catch let error as AuditError {
            throw AuditError(.invalidArgument, "\(option): \(error.message)")
        }
    }

    static func time(_ date: Date?) -> String { date.map(AuditTime.formatTimestamp) ?? "-" }

    static func duration(micros: Double?) -> String { micros.map { AuditTime.formatDuration(micros: $0) } ?? "-" }

    static func count(_ value: Int) -> String {
        let digits = String(value)
        var grouped = ""
        for (index, character) in digits.reversed().enumerated() {
            if index > 0, index % 3 == 0 { grouped.append(",") }
            grouped.append(character)
        }
        return String(grouped.reversed())
    }

    /// `charge-card: card declined by the issuer`, or `-`.
    static func fault(_ slip: AuditSlip) -> String {
        guard let step = slip.faultStep else { return "-" }
        return slip.faultReason.map { "\(step): \(oneLine($0))" } ?? step
    }

    static func oneLine(_ text: String, max: Int = 120) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count > max ? String(flat.prefix(max - 1)) + "…" : flat
    }
}

/// Columns separated by two spaces, numbers right-aligned, the last column not padded.
struct TextTable {
    var headers: [String]
    var rightAligned: Set<Int> = []
    var rows: [[String]] = []

    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (index, cell) in cells.enumerated() {
                let padding = String(repeating: " ", count: max(0, widths[index] - cell.count))
                if rightAligned.contains(index) {
                    parts.append(padding + cell)
                } else if index == cells.count - 1 {
                    parts.append(cell)
                } else {
                    parts.append(cell + padding)
                }
            }
            var text = parts.joined(separator: "  ")
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}
