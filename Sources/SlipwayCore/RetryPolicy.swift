import Foundation

/// How a hop whose handler throws is tried again: up to `maxAttempts` tries in all, waiting
/// `initialDelayMs × multiplier^(attempt − 1)` (capped at `maxDelayMs`) before each new try, plus up to `jitter` of that
/// (0.2: up to 20 % more) so that many slips failing together do not retry in step. Jitter only ever adds: a retry
/// never comes sooner than the policy says.
public struct RetryPolicy: Sendable, Hashable, Codable {
    public var maxAttempts: Int
    public var initialDelayMs: Int
    public var multiplier: Double
    public var maxDelayMs: Int
    public var jitter: Double

    public init(maxAttempts: Int = 3, initialDelayMs: Int = 200, multiplier: Double = 2, maxDelayMs: Int = 30_000, jitter: Double = 0.2) {
        self.maxAttempts = maxAttempts
        self.initialDelayMs = initialDelayMs
        self.multiplier = multiplier
        self.maxDelayMs = maxDelayMs
        self.jitter = jitter
    }

    /// Retried at once, without waiting.
    public static func immediate(maxAttempts: Int) -> RetryPolicy {
        RetryPolicy(maxAttempts: maxAttempts, initialDelayMs: 0, multiplier: 1, maxDelayMs: 0, jitter: 0)
    }

    /// The least wait before the try after `attempt` (1 for the wait after the first try), without jitter.
    public func baseDelayMs(afterAttempt attempt: Int) -> Int {
        guard initialDelayMs > 0 else { return 0 }
        let grown = Double(initialDelayMs) * pow(multiplier, Double(max(attempt - 1, 0)))
        return Int(min(grown, Double(maxDelayMs)).rounded(.up))
    }

    /// The wait before the try after `attempt`, with jitter: `random` in 0..<1.
    public func delayMs(afterAttempt attempt: Int, random: Double) -> Int {
        let base = baseDelayMs(afterAttempt: attempt)
        return base + Int((Double(base) * jitter * min(max(random, 0), 1)).rounded(.down))
    }

    /// The rules a policy from a slip must follow; the reason names the broken one.
    public func problem() -> String? {
        if maxAttempts < 1 || maxAttempts > 1_000 { return "retry.maxAttempts must be 1 to 1000" }
        if initialDelayMs < 0 || maxDelayMs < 0 { return "retry delays must not be negative" }
        if maxDelayMs > 7 * 24 * 3_600_000 { return "retry.maxDelayMs must be at most a week" }
        if !(multiplier >= 1 && multiplier <= 100) { return "retry.multiplier must be 1 to 100" }
        if !(jitter >= 0 && jitter <= 1) { return "retry.jitter must be 0 to 1" }
        return nil
    }
}

extension RetryPolicy {
    enum CodingKeys: String, CodingKey, CaseIterable { case maxAttempts, initialDelayMs, multiplier, maxDelayMs, jitter }

    /// Every field may be left out (its default applies); unknown fields are refused, as everywhere in a slip.
    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self, in: "a retry policy")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = RetryPolicy()
        maxAttempts = try container.optionalField(Int.self, .maxAttempts) ?? defaults.maxAttempts
        initialDelayMs = try container.optionalField(Int.self, .initialDelayMs) ?? defaults.initialDelayMs
        multiplier = try container.optionalField(Double.self, .multiplier) ?? defaults.multiplier
        maxDelayMs = try container.optionalField(Int.self, .maxDelayMs) ?? defaults.maxDelayMs
        jitter = try container.optionalField(Double.self, .jitter) ?? defaults.jitter
    }
}

/// Delays are rounded *up* to a grid 10 % apart (10 ms, 11 ms, 13 ms, ... 1 h), so a few delay queues serve every
/// policy, and a wait is never shorter than asked (at most 10 % longer).
public enum DelayGrid {
    public static func level(forMs ms: Int) -> Int {
        guard ms > 10 else { return ms <= 0 ? 0 : 10 }
        var level = 10.0
        while Int(level.rounded(.up)) < ms { level *= 1.1 }
        return Int(level.rounded(.up))
    }
}
