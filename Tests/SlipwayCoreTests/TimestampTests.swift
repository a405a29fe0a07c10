import Foundation
import Testing

@testable import SlipwayCore

@Suite("Wire timestamps")
struct TimestampTests {
    /// What Foundation's ISO 8601 style writes for the same instant, with the milliseconds appended.
    func foundationText(_ milliseconds: Int64) -> String {
        let (seconds, fraction) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        let (whole, ms) = fraction < 0 ? (seconds - 1, fraction + 1000) : (seconds, fraction)
        let text = Date(timeIntervalSince1970: TimeInterval(whole)).formatted(Date.ISO8601FormatStyle())
        return text.dropLast() + "." + String(format: "%03d", ms) + "Z"
    }

    /// Foundation's style switches to the Julian calendar before 1582-10-15, while this code is proleptic Gregorian:
    /// earlier instants are left to Foundation both ways, so that a slip reads back what it wrote.
    static let gregorianFrom1583: Int64 = -12_212_553_600_000

    @Test("written as Foundation's ISO 8601 style writes them, and read back to the same millisecond, over 20,000 instants; before 1583, Foundation both ways")
    func agreesWithFoundation() throws {
        var random = SplitMix64(seed: 7)
        // 0001-01-01 to 9999-12-31, plus the edges of leap days, months and the epoch.
        var instants: [Int64] = [0, -1, 1, 951_782_400_000, 951_868_799_999, 4_107_542_399_999, -62_135_596_800_000, 253_402_300_799_999]
        for _ in 0..<20_000 {
            instants.append(Int64(random.next() % 316_000_000_000_000) - 62_135_596_800_000)
        }
        let decoder = SlipCodec.makeDecoder()
        for ms in instants where ms <= 253_402_300_799_999 {
            guard ms >= Self.gregorianFrom1583 else {
                #expect(Timestamps.format(millisecondsSince1970: ms) == nil)
                let date = SlipCodec.date(millisecondsSince1970: ms)
                let text = SlipCodec.formatTimestamp(date)
                #expect(Timestamps.parseMilliseconds(text) == nil, "\(text)")
                #expect(try decoder.decode([Date].self, from: Data("[\"\(text)\"]".utf8)) == [date], "\(text)")
                continue
            }
            let text = try #require(Timestamps.format(millisecondsSince1970: ms))
            #expect(text == foundationText(ms))
            #expect(Timestamps.parseMilliseconds(text) == ms)
        }
    }

    @Test("anything but the exact form is left to the general parser, and impossible dates are refused")
    func onlyTheExactForm() {
        for text in [
            "2026-11-22T05:34:20Z", "2026-11-22T05:34:20.1234Z", "2026-11-22T05:34:20.123+01:00", "2026-02-30T00:00:00.000Z",
            "2025-02-29T00:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-11-22T24:00:00.000Z", "2026-11-22T05:60:00.000Z",
            "2026-11-22 05:34:20.123Z", "２026-11-22T05:34:20.123Z", "",
        ] {
            #expect(Timestamps.parseMilliseconds(text) == nil, "\(text)")
        }
        #expect(Timestamps.parseMilliseconds("2024-02-29T23:59:59.999Z") != nil)
    }
}
