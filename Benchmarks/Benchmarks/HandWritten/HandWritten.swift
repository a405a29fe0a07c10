// The hand-written codecs of the hop path against Foundation on the same inputs: the slip's JSON, the wire's
// timestamps and the AMQP URI. Each benchmark does its operation 1,000 times an iteration (scalingFactor .kilo), so
// that a clock read does not swamp an operation of tens of nanoseconds; the table shows the cost of one.
import Benchmark
import Foundation
@_spi(Benchmarks) import SlipwayCore
import Slipway

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(1)
    )
    slipBenchmarks()
    timestampBenchmarks()
    uriBenchmarks()
}

// MARK: The slip's JSON

/// A slip halfway through the example saga (Tests/SlipwayCoreTests/Fixtures/good/midway-with-log-and-compensations.json,
/// compacted): three log entries, two compensations, four variables, 1 KB.
let slipBytes = Array(
    #"{"formatVersion":1,"id":"3f2b9c1e-7a4d-4e8b-9c0f-5d6e7f8a9b0c","template":"order-fulfillment","createdAt":"2026-11-22T05:34:20.125Z","sequence":2,"attempt":1,"state":"running","itinerary":[{"step":"ship-order","arguments":{}},{"step":"notify-customer","arguments":{"email":"ada@example.com"}}],"log":[{"sequence":0,"step":"reserve-stock","kind":"execute","outcome":"completed","attempt":1,"startedAt":"2026-11-22T05:34:20.250Z","durationMicros":18250,"processor":"worker-1.example:4242"},{"sequence":1,"step":"charge-card","kind":"execute","outcome":"retried","attempt":1,"startedAt":"2026-11-22T05:34:20.500Z","durationMicros":30001,"processor":"worker-2.example:5151","reason":"issuer timed out"},{"sequence":1,"step":"charge-card","kind":"execute","outcome":"completed","attempt":2,"startedAt":"2026-11-22T05:34:21.625Z","durationMicros":41000,"processor":"worker-2.example:5151"}],"compensations":[{"step":"reserve-stock","address":"slipway.reserve-stock.compensate","data":{"reservationId":"res-77"},"sequence":0},{"step":"charge-card","address":"slipway.charge-card.compensate","data":{"chargeId":"ch-9001"},"sequence":1}],"variables":{"orderId":"ord-1001","currency":"EUR","reservationId":"res-77","chargeId":"ch-9001"},"deadline":"2026-11-22T06:34:20.125Z"}"#
        .utf8)

func slipBenchmarks() {
    let codec = SlipCodec()
    let slip = try! codec.decode(slipBytes)
    let slipData = Data(slipBytes)

    Benchmark("slip decode: SlipCodec") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try codec.decode(slipBytes))
        }
    }
    // What SlipCodec did before the byte reader: Codable with the same date strategy, then the same validation.
    Benchmark("slip decode: JSONDecoder") { benchmark in
        let decoder = SlipCodec.makeDecoder()
        for _ in benchmark.scaledIterations {
            let decoded = try decoder.decode(Slip.self, from: slipData)
            try decoded.validate()
            blackHole(decoded)
        }
    }
    Benchmark("slip encode: SlipCodec") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try codec.encode(slip))
        }
    }
    // The same bytes (sorted keys, unescaped slashes, millisecond timestamps) through Codable.
    Benchmark("slip encode: JSONEncoder") { benchmark in
        let encoder = SlipCodec.makeEncoder()
        for _ in benchmark.scaledIterations {
            blackHole(try encoder.encode(slip))
        }
    }
}

// MARK: Timestamps

let timestampText = "2026-11-22T05:34:20.125Z"
let timestampDate = Date(timeIntervalSince1970: 1_795_325_660.125)

func timestampBenchmarks() {
    Benchmark("timestamp format: Timestamps") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(TimestampsSPI.format(millisecondsSince1970: 1_795_325_660_125))
        }
    }
    Benchmark("timestamp format: ISO8601FormatStyle") { benchmark in
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        for _ in benchmark.scaledIterations {
            blackHole(style.format(timestampDate))
        }
    }
    Benchmark("timestamp format: ISO8601DateFormatter") { benchmark in
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for _ in benchmark.scaledIterations {
            blackHole(formatter.string(from: timestampDate))
        }
    }
    Benchmark("timestamp parse: Timestamps") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(TimestampsSPI.parseMilliseconds(timestampText))
        }
    }
    Benchmark("timestamp parse: ISO8601FormatStyle") { benchmark in
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        for _ in benchmark.scaledIterations {
            blackHole(try style.parse(timestampText))
        }
    }
    Benchmark("timestamp parse: ISO8601DateFormatter") { benchmark in
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for _ in benchmark.scaledIterations {
            blackHole(formatter.date(from: timestampText))
        }
    }
}

// MARK: The AMQP URI

/// A URI with every part the parser handles: user, percent-encoded password, host, port, encoded vhost, a query.
let amqpURL = "amqp://slipway:s3cr%40t@rabbit-1.internal.example:5672/%2Forders?heartbeat=15&connection_timeout=2000"

func uriBenchmarks() {
    // The whole configuration (AMQPURI plus the query's checks and defaults), as a processor reads it at startup.
    Benchmark("AMQP URL: AMQPConfiguration(url:)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try AMQPConfiguration(url: amqpURL, environment: [:]))
        }
    }
    // Only the split into parts, decoded, that AMQPURI replaces.
    Benchmark("AMQP URL: URLComponents") { benchmark in
        for _ in benchmark.scaledIterations {
            let components = URLComponents(string: amqpURL)!
            blackHole((components.user, components.password, components.host, components.port, components.path))
            blackHole(components.queryItems)
        }
    }
}
