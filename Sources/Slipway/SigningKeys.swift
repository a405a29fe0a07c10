import Configuration
import Crypto
import Foundation
import SlipwayCore

/// Keys that sign and verify slips: HMAC-SHA256 over the exact body bytes, in the headers `x-slipway-key-id` and
/// `x-slipway-signature` (base64). The first key signs; every key verifies, so a new key can be rolled out first as a
/// second key everywhere, then moved to the front, and the old one removed last.
public struct SigningKeys: Sendable {
    public static let keyIDHeader = "x-slipway-key-id"
    public static let signatureHeader = "x-slipway-signature"

    public struct Key: Sendable {
        public var id: String
        // Kept as bytes: swift-crypto's SymmetricKey is not Sendable; making one per use costs a copy of 16-64 bytes.
        let secretBytes: Data
        var secret: SymmetricKey { SymmetricKey(data: secretBytes) }
    }

    public let keys: [Key]

    /// `id=secret,id=secret` (or one pair a line). A secret is taken as UTF-8 text, or as bytes with a `base64:`
    /// prefix; it must be at least 16 bytes. Errors never repeat a secret.
    public init(parsing text: String) throws {
        var keys: [Key] = []
        let pairs = text.split(whereSeparator: { $0 == "," || $0 == "\n" }).map { $0.trimmingCharacters(in: .whitespaces) }
        for (index, pair) in pairs.enumerated() where !pair.isEmpty {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw SigningError("signing key \(index + 1) is not of the form id=secret")
            }
            let id = String(pair[..<equals])
            let secretText = String(pair[pair.index(after: equals)...])
            guard Slip.isValidName(id) else { throw SigningError("signing key id '\(id.prefix(64))' must be 1 to 64 of A-Z a-z 0-9 _ -") }
            let secret: Data
            if secretText.hasPrefix("base64:") {
                guard let bytes = Data(base64Encoded: String(secretText.dropFirst(7))) else {
                    throw SigningError("the secret of signing key '\(id)' is not valid base64")
                }
                secret = bytes
            } else {
                secret = Data(secretText.utf8)
            }
            guard secret.count >= 16 else { throw SigningError("the secret of signing key '\(id)' is shorter than 16 bytes") }
            guard !keys.contains(where: { $0.id == id }) else { throw SigningError("signing key id '\(id)' appears twice") }
            keys.append(Key(id: id, secretBytes: secret))
        }
        guard !keys.isEmpty else { throw SigningError("no signing key given") }
        self.keys = keys
    }

    /// The keys from `SLIPWAY_SIGNING_KEYS`, or from the file `SLIPWAY_SIGNING_KEYS_FILE` names (not both); nil when
    /// neither is set (signing is off).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> SigningKeys?
    {
        try SigningKeys(reading: .processorSettings([.signingKeys], environment: environment))
    }

    /// The keys the `SLIPWAY_SIGNING_KEYS` setting gives; nil without it.
    init?(reading reader: ConfigReader) throws {
        guard let text = reader.value(.signingKeys) else { return nil }
        try self.init(parsing: text)
    }

    /// The headers that sign `body` with the first key.
    public func signatureHeaders(for body: [UInt8]) -> [String: String] {
        let key = keys[0]
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: key.secret)
        return [Self.keyIDHeader: key.id, Self.signatureHeader: Data(mac).base64EncodedString()]
    }

    /// Checks the signature headers against `body`; the rejection says which check failed.
    public func verify(_ body: [UInt8], headers: [String: String]) throws(SlipRejection) {
        guard let keyID = headers[Self.keyIDHeader], let signature = headers[Self.signatureHeader] else {
            throw SlipRejection(.signature, "the message is not signed, and signing is on")
        }
        guard let key = keys.first(where: { $0.id == keyID }) else {
            throw SlipRejection(.signature, "the message is signed with key '\(keyID.prefix(64))', which this processor does not have")
        }
        guard let mac = Data(base64Encoded: signature),
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: key.secret)
        else {
            throw SlipRejection(.signature, "the signature does not match the message: it was modified or signed with another secret")
        }
    }
}

public struct SigningError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
