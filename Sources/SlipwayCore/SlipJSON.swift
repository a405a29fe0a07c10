import Foundation

// The slip's wire form read and written byte by byte (JSONWriter.swift says why). Writing gives the same bytes as the
// Codable path; reading accepts only what the Codable path would decode to the same slip, and hands everything else
// back to it (`nil`), so every refusal still comes from one place with one wording.

extension SlipCodec {
    /// The slip of a well-formed body, or nil when the body needs Foundation's decoder (anything unusual, or wrong).
    static func fastDecode(_ body: UnsafeBufferPointer<UInt8>) -> Slip? {
        var reader = JSONReader(body, maxDepth: maxNestingDepth)
        do {
            let slip = try reader.slip()
            try reader.end()
            return slip
        } catch {
            return nil
        }
    }

    /// Where the byte reader gave up on a body (nil: it did not): for tests that check it takes the common case.
    static func fastDecodeStop(_ body: [UInt8]) -> Int? {
        body.withUnsafeBufferPointer { bytes in
            var reader = JSONReader(bytes, maxDepth: maxNestingDepth)
            do {
                _ = try reader.slip()
                try reader.end()
                return nil
            } catch {
                return reader.position
            }
        }
    }

    static func fastEncode(_ slip: Slip) throws -> [UInt8] {
        var writer = JSONWriter(capacity: 512 + slip.log.count * 200 + slip.itinerary.count * 80)
        try writer.slip(slip)
        return writer.bytes
    }
}

extension SlipEvent {
    /// The event's JSON, as `SlipCodec.makeEncoder()` writes it.
    public func jsonBytes() throws -> [UInt8] {
        var writer = JSONWriter(capacity: 320 + (log?.count ?? 0) * 200)
        try writer.event(self)
        return writer.bytes
    }
}
