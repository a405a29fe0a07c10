import Foundation
import GRDB
import SlipwayTransport

/// The stored form of a hop's outgoing messages: a compact binary layout (bodies as raw bytes, where JSON would
/// spell every byte as a number). Records written by earlier versions, in JSON, are still read.
public enum OutgoingMessageBlob {
    private static let magic: [UInt8] = Array("SWO1".utf8)

    public static func encode(_ messages: [OutgoingMessage]) -> Data {
        var out = Data(magic)
        func int(_ value: Int) { withUnsafeBytes(of: UInt32(value).littleEndian) { out.append(contentsOf: $0) } }
        func bytes(_ value: some Collection<UInt8>) {
            int(value.count)
            out.append(contentsOf: value)
        }
        func string(_ value: String?) {
            guard let value else { return int(Int(UInt32.max)) }
            bytes(Array(value.utf8))
        }
        int(messages.count)
        for message in messages {
            string(message.exchange)
            string(message.routingKey)
            bytes(message.body)
            int(message.headers.count)
            for (key, value) in message.headers.sorted(by: { $0.key < $1.key }) {
                string(key)
                string(value)
            }
            string(message.messageID)
            string(message.correlationID)
            string(message.contentType)
            out.append(message.persistent ? 1 : 0)
        }
        return out
    }

    public static func decode(_ data: Data) throws -> [OutgoingMessage] {
        guard data.starts(with: magic) else { return try JSONDecoder().decode([OutgoingMessage].self, from: data) }
        var reader = Reader(data: [UInt8](data.dropFirst(magic.count)))
        let count = try reader.int()
        var messages: [OutgoingMessage] = []
        for _ in 0..<count {
            let exchange = try reader.string() ?? ""
            let routingKey = try reader.string() ?? ""
            let body = try reader.bytes()
            var headers: [String: String] = [:]
            for _ in 0..<(try reader.int()) {
                let key = try reader.string() ?? ""
                headers[key] = try reader.string() ?? ""
            }
            messages.append(
                OutgoingMessage(
                    exchange: exchange, routingKey: routingKey, body: body, headers: headers,
                    messageID: try reader.string(), correlationID: try reader.string(), contentType: try reader.string(),
                    persistent: try reader.byte() == 1))
        }
        return messages
    }

    private struct Reader {
        let data: [UInt8]
        var offset = 0

        mutating func byte() throws -> UInt8 {
            guard offset < data.count else { throw DatabaseError(message: "truncated hop record") }
            defer { offset += 1 }
            return data[offset]
        }

        mutating func int() throws -> Int {
            var value: UInt32 = 0
            for shift in 0..<4 { value |= UInt32(try byte()) << (8 * shift) }
            return Int(value)
        }

        mutating func bytes() throws -> [UInt8] {
            let count = try int()
            guard count <= data.count - offset else { throw DatabaseError(message: "truncated hop record") }
            defer { offset += count }
            return Array(data[offset..<offset + count])
        }

        mutating func string() throws -> String? {
            let count = try int()
            if count == Int(UInt32.max) { return nil }
            offset -= 4
            return String(decoding: try bytes(), as: UTF8.self)
        }
    }
}
