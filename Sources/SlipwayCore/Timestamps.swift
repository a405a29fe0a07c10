import Foundation

/// The wire's timestamps, `2026-11-22T05:34:20.123Z`, written and read by arithmetic: every hop writes and reads one
/// per log entry, and Foundation's format styles cost microseconds each. Only this exact form is read here; other
/// RFC 3339 forms go to the format styles.
///
/// Only years 1583 to 9999: the arithmetic is the proleptic Gregorian calendar, while Foundation's format styles switch
/// to the Julian calendar before October 1582 (two days apart at year 0). Earlier instants go to Foundation both ways,
/// so that whatever reads a timestamp agrees with whatever wrote it.
enum Timestamps {
    static let years = 1583...9999

    /// `2026-11-22T05:34:20.123Z` for a count of milliseconds since 1970 (in `years`).
    static func format(millisecondsSince1970 milliseconds: Int64) -> String? {
        guard let parts = Parts(milliseconds) else { return nil }
        return String(unsafeUninitializedCapacity: 24) { buffer in
            parts.write(into: buffer)
            return 24
        }
    }

    /// Appends the quoted timestamp to JSON bytes; false (nothing written) outside `years`.
    static func appendQuoted(millisecondsSince1970 milliseconds: Int64, to bytes: inout [UInt8]) -> Bool {
        guard let parts = Parts(milliseconds) else { return false }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 26) { buffer in
            buffer[0] = UInt8(ascii: "\"")
            parts.write(into: UnsafeMutableBufferPointer(rebasing: buffer[1..<25]))
            buffer[25] = UInt8(ascii: "\"")
            bytes.append(contentsOf: buffer)
        }
        return true
    }

    private struct Parts {
        var year: Int
        var month: Int
        var day: Int
        var time: Int

        init?(_ milliseconds: Int64) {
            let (days, msOfDay) = floorDivide(milliseconds, 86_400_000)
            let (year, month, day) = civil(fromDays: days)
            guard Timestamps.years.contains(Int(year)) else { return nil }
            (self.year, self.month, self.day, self.time) = (Int(year), month, day, Int(msOfDay))
        }

        func write(into buffer: UnsafeMutableBufferPointer<UInt8>) {
            func put(_ value: Int, _ width: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + width - 1, through: offset, by: -1) {
                    buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(year, 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            put(month, 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            put(day, 2, at: 8)
            buffer[10] = UInt8(ascii: "T")
            put(time / 3_600_000, 2, at: 11)
            buffer[13] = UInt8(ascii: ":")
            put(time / 60_000 % 60, 2, at: 14)
            buffer[16] = UInt8(ascii: ":")
            put(time / 1000 % 60, 2, at: 17)
            buffer[19] = UInt8(ascii: ".")
            put(time % 1000, 3, at: 20)
            buffer[23] = UInt8(ascii: "Z")
        }
    }

    /// Milliseconds since 1970 of exactly `YYYY-MM-DDTHH:MM:SS.mmmZ` with fields in range; nil for anything else.
    static func parseMilliseconds(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { parseMilliseconds(bytes: $0) }
    }

    static func parseMilliseconds(bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard bytes.count == 24, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            bytes[19] == UInt8(ascii: "."), bytes[23] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ offset: Int, _ width: Int) -> Int? {
            var value = 0
            for index in offset..<offset + width {
                let digit = Int(bytes[index]) - Int(UInt8(ascii: "0"))
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0, 4), Timestamps.years.contains(year), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2), let millisecond = number(20, 3),
            (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day), hour < 24, minute < 60,
            second < 60
        else { return nil }
        let days = Self.days(fromCivil: Int64(year), month, day)
        return ((days * 24 + Int64(hour)) * 60 + Int64(minute)) * 60_000 + Int64(second) * 1000 + Int64(millisecond)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let (q, r) = a.quotientAndRemainder(dividingBy: b)
        return r < 0 ? (q - 1, r + b) : (q, r)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    private static func days(fromCivil year: Int64, _ month: Int, _ day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let monthIndex = Int64(month > 2 ? month - 3 : month + 9)
        let dayOfYear = (153 * monthIndex + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date of a count of days since 1970-01-01 (H. Hinnant's civil_from_days).
    private static func civil(fromDays days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
        let month = Int(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
