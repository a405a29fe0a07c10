import Slipway

/// One parked message as `slip dlq` shows it: what its headers say (and its size). Encoded with these property
/// names, as `slip dlq list --json` prints them, and decoded from that output by the chaos run.
public struct ParkedMessage: Codable, Sendable {
    public var parkedId: String
    public var reasonCode: String?
    public var reason: String?
    public var originalQueue: String?
    public var slipId: String?
    public var processor: String?
    public var parkedAt: String?
    public var size: Int

    public init(
        parkedId: String, reasonCode: String? = nil, reason: String? = nil, originalQueue: String? = nil,
        slipId: String? = nil, processor: String? = nil, parkedAt: String? = nil, size: Int = 0
    ) {
        self.parkedId = parkedId
        self.reasonCode = reasonCode
        self.reason = reason
        self.originalQueue = originalQueue
        self.slipId = slipId
        self.processor = processor
        self.parkedAt = parkedAt
        self.size = size
    }

    public init(_ delivery: Delivery) {
        parkedId = DeadLetterScan.parkedID(of: delivery)
        reasonCode = delivery.headers[ParkedHeaders.reasonCode]
        reason = delivery.headers[ParkedHeaders.reason]
        originalQueue = delivery.headers[ParkedHeaders.originalQueue]
        // Messages parked by older versions name no slip when their body was not a valid slip: read its id here.
        slipId = delivery.headers[ParkedHeaders.slipID] ?? SlipPeek.read(delivery.body)?.slipID
        processor = delivery.headers[ParkedHeaders.processor]
        parkedAt = delivery.headers[ParkedHeaders.parkedAt]
        size = delivery.body.count
    }
}

/// What a replay publishes: each parked message with an original queue, its body back to that queue byte for byte;
/// those without one are skipped (left in the dead-letter queue).
public struct ReplayPlan: Sendable {
    public struct Item: Sendable {
        public var delivery: Delivery
        public var message: OutgoingMessage
    }

    public var replayable: [Item] = []
    /// Parked messages with no `x-slipway-original-queue` header: nowhere to send them back to.
    public var skipped: [Delivery] = []

    /// A compensation-failed slip resumes its walk-back at attempt 1 when it arrives; any other message is processed
    /// afresh (and parked again if it still cannot be).
    public init(_ deliveries: [Delivery]) {
        for delivery in deliveries {
            guard let queue = delivery.headers[ParkedHeaders.originalQueue], !queue.isEmpty else {
                skipped.append(delivery)
                continue
            }
            let slipID = delivery.headers[ParkedHeaders.slipID]
            // The body goes back byte for byte, so its signature (kept by the parking processor) still holds.
            let signature = delivery.headers.filter {
                $0.key == SigningKeys.keyIDHeader || $0.key == SigningKeys.signatureHeader
            }
            let message = OutgoingMessage.toQueue(
                queue, body: delivery.body, headers: signature,
                messageID: slipID.map { "\($0).replayed.\(DeadLetterScan.parkedID(of: delivery))" },
                correlationID: slipID ?? delivery.correlationID,
                contentType: delivery.contentType ?? (slipID != nil ? SlipCodec.contentType : nil))
            replayable.append(Item(delivery: delivery, message: message))
        }
    }
}
