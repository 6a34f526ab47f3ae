import Foundation

/// A temporary directory removed by `remove()`.
public struct TempDir: Sendable {
    public let path: String

    public init() throws {
        path = NSTemporaryDirectory() + "credits-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Deterministic random numbers for property tests (SplitMix64), so a failure replays from its seed.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}


/// A clock tests move by hand.
public final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var nowMs: Int64

    public init(startMs: Int64 = 0) { nowMs = startMs }

    public var now: Int64 { lock.withLock { nowMs } }

    public func advance(ms: Int64) { lock.withLock { nowMs += ms } }
}
