/// `Timestamps` as the microbenchmarks (Benchmarks/) call it: SPI, not API.
@_spi(Benchmarks) public enum TimestampsSPI {
    public static func format(millisecondsSince1970 milliseconds: Int64) -> String? {
        Timestamps.format(millisecondsSince1970: milliseconds)
    }

    public static func parseMilliseconds(_ text: String) -> Int64? {
        Timestamps.parseMilliseconds(text)
    }
}
