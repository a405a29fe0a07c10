import Foundation

/// The log-scale buckets the audit store counts hop durations in, per step and kind, so that percentiles over any
/// number of hops come from a few hundred rows.
///
/// Bucket 0 holds 0 µs. Bucket `b ≥ 1` holds durations `d` (µs) with `2^((b-1)/16) ≤ d < 2^(b/16)`: sixteen buckets
/// per doubling. A percentile is the geometric middle of the bucket that holds the nearest-rank sample, clamped to the
/// step's exact minimum and maximum, so it is within `relativePrecision` (2.19 %) of the exact nearest-rank value.
public enum DurationBuckets {
    public static let perDoubling = 16
    /// `2^(1/32) - 1`: the largest relative distance between a bucket's geometric middle and a value in the bucket.
    public static let relativePrecision = pow(2, 1 / Double(2 * perDoubling)) - 1

    public static func bucket(micros: Int64) -> Int {
        guard micros >= 1 else { return 0 }
        return 1 + Int((log2(Double(micros)) * Double(perDoubling)).rounded(.down))
    }

    public static func lowerBound(_ bucket: Int) -> Double {
        bucket <= 0 ? 0 : pow(2, Double(bucket - 1) / Double(perDoubling))
    }

    public static func upperBound(_ bucket: Int) -> Double {
        bucket <= 0 ? 1 : pow(2, Double(bucket) / Double(perDoubling))
    }

    /// The value a bucket stands for: its geometric middle (0 for bucket 0).
    public static func representative(_ bucket: Int) -> Double {
        bucket <= 0 ? 0 : pow(2, (Double(bucket) - 0.5) / Double(perDoubling))
    }

    /// The nearest-rank percentile (`p` in 0...100) of the durations counted in `buckets` (bucket, count), sorted by
    /// bucket, clamped to `[minimum, maximum]`.
    public static func percentile(
        _ p: Double, buckets: [(bucket: Int, count: Int64)], minimum: Double? = nil, maximum: Double? = nil
    ) -> Double? {
        let total = buckets.reduce(Int64(0)) { $0 + $1.count }
        guard total > 0 else { return nil }
        let rank = max(Int64(1), Int64((p / 100 * Double(total)).rounded(.up)))
        var seen: Int64 = 0
        for entry in buckets {
            seen += entry.count
            if seen >= rank {
                var value = representative(entry.bucket)
                if let minimum { value = max(value, minimum) }
                if let maximum { value = min(value, maximum) }
                return value
            }
        }
        return maximum
    }
}
