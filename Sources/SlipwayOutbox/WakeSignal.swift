import Synchronization

/// Wakes every waiter, or the next one if none waits (a signal is never lost, and several coalesce into one). Several
/// relays may wait on one outbox's signal (`PostgresOutbox` shared by relays of one process).
public final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waits begun and not ended, and those whose timeout came before they started waiting (they return at once).
        var active: Set<UInt64> = []
        var expired: Set<UInt64> = []
        var nextID: UInt64 = 0
    }
    private let state = Mutex(State())

    public init() {}

    public func signal() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.waiters.isEmpty else {
                state.pending = true
                return []
            }
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns at the next signal (at once if one came since the last wait), or after `timeout`.
    public func wait(upTo timeout: Duration) async {
        let id = state.withLock { state in
            state.nextID += 1
            state.active.insert(state.nextID)
            return state.nextID
        }
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.expire(id)
        }
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.expired.remove(id) != nil { return true }
                if state.pending {
                    state.pending = false
                    return true
                }
                state.waiters[id] = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
        timer.cancel()
        state.withLock { state in
            state.active.remove(id)
            state.expired.remove(id)
        }
    }

    /// Ends wait `id` on its timeout, or marks it expired if it has not begun waiting yet.
    private func expire(_ id: UInt64) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiters.removeValue(forKey: id) else {
                if state.active.contains(id) { state.expired.insert(id) }
                return nil
            }
            return waiter
        }
        waiter?.resume()
    }
}
