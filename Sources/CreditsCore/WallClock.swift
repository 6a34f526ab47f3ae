/// Time in milliseconds since 1970, injected so tests control it.
public struct WallClock: Sendable {
    public var nowMs: @Sendable () -> Int64

    public init(nowMs: @escaping @Sendable () -> Int64) {
        self.nowMs = nowMs
    }
}
