// swift-tools-version:6.1
// Microbenchmarks of the hand-written parts of Slipway against what Foundation offers for the same job (make microbench,
// docs/performance.md). A package of its own so that the root package neither builds nor resolves the benchmark library.
import PackageDescription

let package = Package(
    name: "SlipwayBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "Slipway", path: ".."),
        // The trait keeps the malloc counts and leaves out the runtime interposer (not needed, and not resolvable here).
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "HandWritten",
            dependencies: [
                .product(name: "Slipway", package: "Slipway"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/HandWritten",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
