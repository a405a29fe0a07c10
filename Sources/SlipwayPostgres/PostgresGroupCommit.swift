import Synchronization

/// Group commit without a task of its own, for the PostgreSQL writers (as `HopRecordWriter` does for SQLite): a caller
/// that finds fewer than `writersAtOnce` batches being written writes one from its own task, after letting the tasks
/// already due add theirs (a yield); when its batch is written it hands the next one to the first caller waiting in
/// it, or writes the unawaited items (`post`) left over, or stops writing.
///
/// Up to `writersAtOnce` batches are in flight, each on a connection of its own: a commit waits for the disk, and
/// PostgreSQL flushes the commits that wait together with one write (its own group commit).
final class PostgresGroupCommit<Item: Sendable, Answer: Sendable>: Sendable {
    /// Writes a batch; returns, for each item in order, its answer.
    typealias Write = @Sendable ([Item]) async -> [Result<Answer, any Error>]

    private enum Turn: Sendable {
        case answered(Result<Answer, any Error>)
        case writeYourself
    }

    private enum Next {
        case handOver(CheckedContinuation<Turn, Never>)
        case writeRest
        case done([CheckedContinuation<Void, Never>])
    }

    private struct Entry {
        var item: Item
        /// Nil for an item nobody waits for (`post`).
        var continuation: CheckedContinuation<Turn, Never>?
    }

    private struct State {
        var queue: [Entry] = []
        /// Callers writing a batch now. Items are queued only while there is one, and a writer stops only when the
        /// queue is empty, so nothing queued is left unwritten.
        var writers = 0
        /// Set by `close`: what a later item is answered.
        var closed: (any Error)?
        var drained: [CheckedContinuation<Void, Never>] = []
    }

    private let batchLimit: Int
    private let writersAtOnce: Int
    private let write: Write
    private let state = Mutex(State())

    init(batchLimit: Int, writersAtOnce: Int, write: @escaping Write) {
        self.batchLimit = batchLimit
        self.writersAtOnce = writersAtOnce
        self.write = write
    }

    /// Returns `item`'s answer once its batch is written.
    func submit(_ item: Item) async -> Result<Answer, any Error> {
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
            let turn = state.withLock { state -> Turn? in
                if let closed = state.closed { return .answered(.failure(closed)) }
                if state.writers < writersAtOnce {
                    state.writers += 1
                    return .writeYourself
                }
                state.queue.append(Entry(item: item, continuation: continuation))
                return nil
            }
            if let turn { continuation.resume(returning: turn) }
        }
        switch turn {
        case .answered(let result):
            return result
        case .writeYourself:
            await Task.yield()
            return await writeBatches(own: item)
        }
    }

    /// Queued for the batch being written, without waiting; written by the caller itself when no batch is. Throws
    /// once closed.
    func post(_ item: Item) async throws {
        let writes = try state.withLock { state in
            if let closed = state.closed { throw closed }
            if state.writers == 0 {
                state.writers = 1
                return true
            }
            state.queue.append(Entry(item: item, continuation: nil))
            return false
        }
        if writes {
            await Task.yield()
            _ = await writeBatches(own: item)
        }
    }

    /// Answers every later item `error`, then returns once what came before is written.
    func close(_ error: any Error) async {
        state.withLock { $0.closed = error }
        await drain()
    }

    /// Returns once no batch is being written, and so nothing queued before the call is left unwritten.
    func drain() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state in
                if state.writers == 0 { return true }
                state.drained.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// Writes `own` with what waits, then the batches after it until one can be handed over; returns `own`'s answer.
    private func writeBatches(own: Item) async -> Result<Answer, any Error> {
        var ownResult: Result<Answer, any Error>?
        var own: Item? = own
        while true {
            let room = batchLimit - (own == nil ? 0 : 1)
            let taken = state.withLock { state in
                let taken = Array(state.queue.prefix(room))
                state.queue.removeFirst(taken.count)
                return taken
            }
            let results = await write(taken.map(\.item) + (own.map { [$0] } ?? []))
            for (entry, result) in zip(taken, results) { entry.continuation?.resume(returning: .answered(result)) }
            if own != nil { ownResult = results.last }
            own = nil

            let next = state.withLock { state -> Next in
                if let index = state.queue.firstIndex(where: { $0.continuation != nil }) {
                    return .handOver(state.queue.remove(at: index).continuation!)
                }
                if !state.queue.isEmpty { return .writeRest }
                state.writers -= 1
                guard state.writers == 0 else { return .done([]) }
                defer { state.drained.removeAll() }
                return .done(state.drained)
            }
            switch next {
            case .handOver(let writer):
                writer.resume(returning: .writeYourself)
            case .writeRest:
                continue
            case .done(let drained):
                for continuation in drained { continuation.resume() }
            }
            return ownResult ?? .failure(PostgresStoreError("database", "a batch went unanswered"))
        }
    }
}
