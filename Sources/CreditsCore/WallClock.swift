/// Time in milliseconds since 1970, injected so tests control it.
public struct WallClock: Sendable {
    public var nowMs: @Sendable () -> Int64

    public init(nowMs: @escaping @Sendable () -> Int64) {
        self.nowMs = nowMs
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded toward zero; `Int64.max` (or `.min`) past what
    /// an `Int64` of milliseconds holds, rather than a trap.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        if seconds > Int64.max / 1_000 - 1 { return .max }
        if seconds < Int64.min / 1_000 + 1 { return .min }
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
