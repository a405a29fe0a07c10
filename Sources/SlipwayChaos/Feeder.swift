import Foundation
import Slipway
import Synchronization

/// Sends the run's slips in confirmed batches at a steady `rate` (slips per second), keeping at most `window` of them
/// in flight (sent, not yet ended): the flow lasts long enough for the faults to land in it, instead of being over
/// before the first one.
///
/// A batch whose publish fails (the broker restarting longer than the publisher's deadline) is sent again: a slip
/// that reached its first queue twice is run once, the second copy finding the first one's hop record.
struct Feeder: Sendable {
    let sender: SlipSender
    let window: Int
    let rate: Double
    /// Slips whose first hop message goes out twice (the same bytes, a moment apart), spread over the run: a
    /// duplicate the hop record must answer, on whichever instance of the step it lands.
    var duplicates = 0

    final class Counters: Sendable {
        private let state = Mutex((sent: 0, failedBatches: 0, duplicated: 0, finished: false))
        var sent: Int { state.withLock { $0.sent } }
        var duplicated: Int { state.withLock { $0.duplicated } }
        func addDuplicated(_ count: Int) { state.withLock { $0.duplicated += count } }
        var failedBatches: Int { state.withLock { $0.failedBatches } }
        /// Every slip was sent (or the feeder was cancelled).
        var finished: Bool { state.withLock { $0.finished } }
        func finish() { state.withLock { $0.finished = true } }
        func add(sent: Int) { state.withLock { $0.sent += sent } }
        func addFailedBatch() { state.withLock { $0.failedBatches += 1 } }
    }

    /// Whether slip `index` of `count` is one of the `duplicates`, spread evenly over the run.
    private func isDuplicated(_ index: Int, of count: Int) -> Bool {
        guard duplicates > 0 else { return false }
        let every = max(1, count / duplicates)
        return index % every == every / 2 && index / every < duplicates
    }

    /// About four batches a second, of at most 20 slips.
    private var batchSize: Int { max(1, min(20, Int(rate / 4))) }

    func run(_ slips: [Slip], ended: @escaping @Sendable () -> Int, counters: Counters, log: String) async {
        defer { counters.finish() }
        var due = ContinuousClock.now
        var next = 0
        while next < slips.count, !Task.isCancelled {
            if ContinuousClock.now < due || counters.sent - ended() >= window {
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            let batch = Array(slips[next..<min(next + batchSize, slips.count)])
            do {
                try await sender.send(batch)
                counters.add(sent: batch.count)
                let again = batch.indices.filter { isDuplicated(next + $0, of: slips.count) }.map { batch[$0] }
                if !again.isEmpty {
                    try await sender.send(again)
                    counters.addDuplicated(again.count)
                }
                next += batch.count
                // After a stall (a broker restart) the flow goes on at its rate, not in a burst that catches up.
                due = max(due, ContinuousClock.now.advanced(by: .milliseconds(-500)))
                    .advanced(by: .seconds(Double(batch.count) / rate))
            } catch {
                counters.addFailedBatch()
                appendLine("--- slipway-chaos \(SlipCodec.formatTimestamp(Date())): a batch of \(batch.count) slips "
                    + "was not confirmed (\(error)); sending it again", to: log)
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
