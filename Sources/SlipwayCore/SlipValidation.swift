import Foundation

extension Slip {
    /// Checks the rules of the format that JSON's shape alone does not say. Throws the first rule broken.
    public func validate(limits: SlipLimits = SlipLimits()) throws(SlipRejection) {
        func invalid(_ reason: String) -> SlipRejection { SlipRejection(.invalid, reason) }

        guard Slip.isValidName(id) else {
            throw invalid("'id' must be 1 to 64 characters of A-Z a-z 0-9 _ -, got '\(id.prefix(80))'")
        }
        guard Slip.isValidName(template) else {
            throw invalid("'template' must be 1 to 64 characters of A-Z a-z 0-9 _ -, got '\(template.prefix(80))'")
        }
        guard sequence >= 0 else { throw invalid("'sequence' must not be negative") }
        guard attempt >= 1 else { throw invalid("'attempt' must be at least 1") }
        guard itinerary.count <= limits.maxItinerarySteps else {
            throw SlipRejection(
                .tooLarge, "the itinerary has \(itinerary.count) steps; the limit is \(limits.maxItinerarySteps)")
        }
        let variablesSize = JSONValue.object(variables).approximateJSONBytes
        guard variablesSize <= limits.maxVariablesBytes else {
            throw SlipRejection(
                .tooLarge, "the variables take about \(variablesSize) bytes; the limit is \(limits.maxVariablesBytes)")
        }
        for (index, entry) in itinerary.enumerated() {
            guard Slip.isValidName(entry.step) else {
                throw invalid("'itinerary[\(index)].step' is not a valid step name: '\(entry.step.prefix(80))'")
            }
            if let problem = entry.retry?.problem() { throw invalid("'itinerary[\(index)]': \(problem)") }
            if let timeout = entry.timeoutMs, !Slip.timeoutRangeMs.contains(timeout) {
                throw invalid("'itinerary[\(index)].timeoutMs' must be 1 ms to 24 h")
            }
            if let timeout = entry.compensateTimeoutMs, !Slip.timeoutRangeMs.contains(timeout) {
                throw invalid("'itinerary[\(index)].compensateTimeoutMs' must be 1 ms to 24 h")
            }
        }
        for (index, record) in compensations.enumerated() {
            guard Slip.isValidName(record.step) else {
                throw invalid("'compensations[\(index)].step' is not a valid step name")
            }
            guard !record.address.isEmpty else { throw invalid("'compensations[\(index)].address' is empty") }
            if let timeout = record.timeoutMs, !Slip.timeoutRangeMs.contains(timeout) {
                throw invalid("'compensations[\(index)].timeoutMs' must be 1 ms to 24 h")
            }
        }
        switch state {
        case .running:
            guard !itinerary.isEmpty else { throw invalid("a running slip must have at least one step in its itinerary") }
        case .compensating:
            guard !compensations.isEmpty else { throw invalid("a compensating slip must have a compensation record") }
            guard fault != nil else { throw invalid("a compensating slip must say its 'fault'") }
        case .completed, .compensated, .faulted, .compensationFailed, .terminated:
            break
        }
    }

    /// A step's timeouts (`timeoutMs`, `compensateTimeoutMs`, a compensation record's `timeoutMs`): 1 ms to 24 h.
    public static let timeoutRangeMs = 1...(24 * 3_600_000)

    /// Step names, slip ids and template names: they appear in queue names and routing keys, so no dots or spaces.
    public static func isValidName(_ name: String) -> Bool {
        let utf8 = name.utf8
        guard !utf8.isEmpty, utf8.count <= 64 else { return false }
        return utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "_")
        }
    }

    /// The step the next hop belongs to: the itinerary's head while running, the top compensation while compensating.
    public var nextHop: (kind: HopKind, step: String)? {
        switch state {
        case .running: itinerary.first.map { (.execute, $0.step) }
        case .compensating: compensations.last.map { (.compensate, $0.step) }
        default: nil
        }
    }
}
