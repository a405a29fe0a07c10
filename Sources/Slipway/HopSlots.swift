import Synchronization

/// The `concurrency` of a queue: how many hops may run their handler and forward their slip at once.
///
/// A hop holds its slot until its slip is forwarded, not until it is acknowledged: what remains (waiting for its
/// hop events' batch to be confirmed, then the ack) costs the step's external system nothing, and the prefetch
/// bounds how many hops can be at that stage.
final class HopSlots: Sendable {
    private struct State {
        var free: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(_ count: Int) {
        state = Mutex(State(free: max(1, count)))
    }

    /// Slots free now (for tests).
    var available: Int { state.withLock { $0.free } }

    /// Waits for a free slot and takes it.
    func acquire() async -> Slot {
        let taken = state.withLock { state -> Bool in
            guard state.free > 0 else { return false }
            state.free -= 1
            return true
        }
        if !taken {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.free > 0 {
                        state.free -= 1
                        return true
                    }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        return Slot(self)
    }

    fileprivate func giveBack() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }  // the slot passes to it
            state.free += 1
            return nil
        }
        waiter?.resume()
    }

    /// One hop's slot, given back once (the first `release` counts).
    final class Slot: Sendable {
        private let slots: HopSlots
        private let released = Atomic(false)

        fileprivate init(_ slots: HopSlots) {
            self.slots = slots
        }

        func release() {
            if !released.exchange(true, ordering: .acquiringAndReleasing) { slots.giveBack() }
        }

        deinit {
            release()
        }
    }
}
