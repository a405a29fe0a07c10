extension Duration {
    /// The duration in seconds, as a fraction: for the APIs that take a `TimeInterval` and for reports. `package`: the
    /// modules of Slipway share it, and a user's `Duration` gains nothing from `import Slipway`.
    package var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
